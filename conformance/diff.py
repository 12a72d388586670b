"""`xent diff OLD NEW`: what changed between two runs, row by row.

Rows pair on their identity (results.IDENTITY: suite, case_id, framework, mode, api, device,
dtype, output), the runtime aside where each side ran a framework under one runtime only: two
runs of one framework under different runtimes therefore pair by framework: that is the
version check. A mode diff (`xent diff RUN --modes eager compile`) pairs the rows of two modes
the same way, and a backend diff (`xent diff RUN --backends keras-jax keras-torch`) the rows of two
frameworks that share an API table (each in its default mode, unless --modes says which). Each pair falls in one class:

- raises (mode and backend diffs only): raises in one mode (or backend), returns a value in the other;
- regression: conformed before and not now (any other verdict, crashed included), or a known
  divergence became an unknown one;
- fix: the reverse (did not conform, conforms now; or an unknown divergence is now known);
- changed: among the rest, the verdict, the variant, the exception type or the expectation that
  explains it changed; or, on the same machine kind (equal `device_name`), the output moved by
  more than `drift` (below);
- drift: the same verdict, variant, exception type and expectation, but the output's bits moved:
  what another CPU's vector ISA, another GPU model or a thread count does to the last bits.
  Reported, and failing only when asked (`--fail-on drift`);
- new: in NEW only; missing: in OLD only (a crashed or skipped framework must not look clean).

How far an output moved is measured on the share of the tolerance it uses (`max_tol_ratio`,
error / tolerance): |new - old| / max(1, old, new). Within the tolerance that is the change of
the share itself; beyond it (a variant, an inaccurate output, where the share can be 1e44) it
is relative to how far the output already was, so one bit on a far-off output is a small move.
An output whose share cannot be measured (no finite element on one side, or a shape the
canonical answer does not have, as a variant averaging an axis away) moved far when an element
changed kind (finite, +inf, -inf, NaN) or moved by more than TOL_FACTOR (4) ulps, the
tolerance's own factor; and never where an error was expected (`no_error`: what it returned is
not measured).
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reference.formats import FORMATS, to_float64
from reference.golden import atomic_write_bytes

from .suites import results_path  # noqa: F401 (the diff's users name it here)
from .gates import BASELINE_FAILS, DIFF_CLASSES  # noqa: F401 (BASELINE_FAILS: for the diff's users)
from .results import IDENTITY
from .verdicts import CONFORMS, TOL_FACTOR, UNSUPPORTED, kind_codes, ulp

KEY = [k for k in IDENTITY if k != "runtime"]
CLASSES = DIFF_CLASSES
COMPARED = ["verdict", "variants", "error_type", "known", "max_tol_ratio", "detail", "runtime",
            "framework_version", "observed_values", "expected_values", "inputs", "case_sha256", "device_name",
            "observed_dtype", "observed_shape", "observed_bits", "expected_kind"]
DEFAULT_DRIFT = 0.25


@dataclass
class Diff:
    pairs: pd.DataFrame  # one row per paired key: KEY, <column>_old, <column>_new, class
    notices: list[str] = field(default_factory=list)
    old_label: str = "OLD"
    new_label: str = "NEW"

    def changes(self) -> pd.DataFrame:
        return self.pairs[self.pairs["class"] != "same"]

    def counts(self) -> dict[str, int]:
        found = self.pairs["class"].value_counts()
        return {c: int(found.get(c, 0)) for c in CLASSES}


def _diverging(verdict: pd.Series) -> pd.Series:
    return ~verdict.isin([CONFORMS, UNSUPPORTED]) & verdict.notna()


def _key_for(old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    several = any((side.groupby("framework")["runtime"].nunique() > 1).any() for side in (old, new))
    return IDENTITY if several else KEY


def _moves(pairs: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per pair: whether the observed outputs differ bit for bit (any NaN equal to any NaN: a
    NaN's payload and sign are not a result), and whether they differ by more than the
    tolerance's own factor of ulps, or in an element's kind (finite, +inf, -inf, NaN): the
    measure for outputs whose share of the tolerance is unmeasured."""
    raw = ((pairs["observed_bits_old"] != pairs["observed_bits_new"])
           | (pairs["observed_dtype_old"] != pairs["observed_dtype_new"])
           | (pairs["observed_shape_old"] != pairs["observed_shape_new"]))
    moved, far = raw.to_numpy().copy(), raw.to_numpy().copy()
    decodable = raw & pairs["observed_dtype_old"].fillna("").astype(bool) & ~(
        (pairs["observed_dtype_old"] != pairs["observed_dtype_new"]) | (pairs["observed_shape_old"] != pairs["observed_shape_new"]))
    where = np.flatnonzero(decodable.to_numpy())
    columns = pairs[["observed_dtype_old", "observed_bits_old", "observed_bits_new"]].to_numpy()[where]
    with np.errstate(invalid="ignore", over="ignore"):
        for i, (dtype, old, new) in zip(where, columns):
            fmt = FORMATS[dtype]
            a, b = (to_float64(np.frombuffer(bits, dtype=np.dtype(fmt.storage).newbyteorder("<")), fmt)
                    for bits in (old, new))
            same = (a == b) & (np.signbit(a) == np.signbit(b)) | (np.isnan(a) & np.isnan(b))
            moved[i] = not same.all()
            finite = np.isfinite(a) & np.isfinite(b)
            ulps = np.abs(a - b)[finite] / ulp(np.maximum(np.abs(a), np.abs(b))[finite], dtype)
            far[i] = bool((kind_codes(a) != kind_codes(b)).any() or (ulps > TOL_FACTOR).any())
    return pd.Series(moved, index=pairs.index), pd.Series(far, index=pairs.index)


def share_moved(old: pd.Series, new: pd.Series) -> pd.Series:
    """How far an output moved, in shares of the tolerance: |new - old| / max(1, old, new)."""
    return (new - old).abs() / np.maximum(1.0, np.maximum(old.abs(), new.abs()))


def compare(old: pd.DataFrame, new: pd.DataFrame, *, drift: float = DEFAULT_DRIFT, old_label="OLD",
            new_label="NEW", across: bool = False) -> Diff:
    """`across`: the two sides are two ways of running one call (two modes, or two backends of one
    API table): a pair that raises on one side and returns a value on the other is `raises`,
    whatever else it is."""
    notices = []
    shared = set(zip(old["suite"], old["case_id"])) & set(zip(new["suite"], new["case_id"]))
    if len(old) and len(new) and not shared:
        notices.append(f"the runs share no case ({old_label}: {old['case_id'].nunique()} cases, {new_label}: "
                       f"{new['case_id'].nunique()}): every row is new or missing")
    for suite in sorted(set(old["suite"]) | set(new["suite"])):
        # a suite whose golden files differ between the runs: only the cases both ran with the
        # same golden file are comparable (rows of the same suite absent from NEW are `missing`)
        o, n = old[old["suite"] == suite], new[new["suite"] == suite]
        if o.empty or n.empty or set(o["suite_hash"]) == set(n["suite_hash"]):
            continue
        cases_old, cases_new = o.groupby("case_id")["case_sha256"].first(), n.groupby("case_id")["case_sha256"].first()
        common = cases_old.index.intersection(cases_new.index)
        changed = [c for c in common if cases_old[c] != cases_new[c]]
        only_old, only_new = cases_old.index.difference(cases_new.index), cases_new.index.difference(cases_old.index)
        keep = set(common) - set(changed)
        examples = ", ".join((changed or list(only_old) or list(only_new))[:3])
        notices.append(
            f"suite {suite!r}: the runs used different golden files (suite hash {next(iter(set(o['suite_hash'])))[:12]} "
            f"vs {next(iter(set(n['suite_hash'])))[:12]}): {len(only_old)} cases only in {old_label}, {len(only_new)} "
            f"only in {new_label}, {len(changed)} whose golden file changed (e.g. {examples}); the diff covers the "
            f"{len(keep)} cases both ran with the same golden file (--reclassify classifies both under today's files)")
        old = old[(old["suite"] != suite) | old["case_id"].isin(keep)]
        new = new[(new["suite"] != suite) | new["case_id"].isin(keep)]
    key = _key_for(old, new)
    columns = [c for c in COMPARED if c not in key]
    pairs = old[key + columns].merge(new[key + columns], on=key, how="outer", suffixes=("_old", "_new"),
                                     indicator=True)
    o_conf, n_conf = pairs["verdict_old"] == CONFORMS, pairs["verdict_new"] == CONFORMS
    o_div, n_div = _diverging(pairs["verdict_old"]), _diverging(pairs["verdict_new"])
    o_known, n_known = pairs["known_old"].fillna("") != "", pairs["known_new"].fillna("") != ""
    both = pairs["_merge"] == "both"
    pairs["moved"] = share_moved(pairs["max_tol_ratio_old"], pairs["max_tol_ratio_new"])
    bits_moved, ulps_far = pd.Series(False, index=pairs.index), pd.Series(False, index=pairs.index)
    bits_moved[both], ulps_far[both] = _moves(pairs[both])
    # where an error was expected the values returned are not measured against anything (optax's
    # answer to an out-of-range label reads past the row): their bits moving is drift at most
    judged = pairs["expected_kind_old"] != "error"
    far = (pairs["moved"] > drift) | (pairs["moved"].isna() & ulps_far & judged)
    same_machine = pairs["device_name_old"] == pairs["device_name_new"]
    differs = ((pairs["verdict_old"] != pairs["verdict_new"]) | (pairs["variants_old"] != pairs["variants_new"])
               | (pairs["error_type_old"] != pairs["error_type_new"]) | (pairs["known_old"] != pairs["known_new"]))
    # an exception of the framework's own (not unsupported, not a crash) against a returned value
    returned_old = pairs["observed_dtype_old"].fillna("").astype(bool)
    returned_new = pairs["observed_dtype_new"].fillna("").astype(bool)
    raised_old = ~pairs["error_type_old"].fillna("unsupported").isin(["", "unsupported", "crashed"])
    raised_new = ~pairs["error_type_new"].fillna("unsupported").isin(["", "unsupported", "crashed"])
    conditions = [
        pairs["_merge"] == "left_only",
        pairs["_merge"] == "right_only",
        across & both & ((raised_old & returned_new) | (returned_old & raised_new)),
        (o_conf & ~n_conf) | (o_div & o_known & n_div & ~n_known),
        (~o_conf & n_conf) | (o_div & ~o_known & n_div & n_known),
        differs | (same_machine & far),
        bits_moved | far,
    ]
    pairs["class"] = np.select(conditions, ["missing", "new", "raises", "regression", "fix", "changed", "drift"],
                               default="same")
    pairs = pairs.drop(columns=["_merge", "observed_bits_old", "observed_bits_new"])
    return Diff(pairs, notices, old_label, new_label)


def _state(verdict, known, variants, error_type) -> str:
    if not isinstance(verdict, str):
        return "-"
    text = verdict
    if variants:
        text += f" ({variants})"
    elif error_type and error_type != "unsupported":  # a conforming row may be an expected error
        text += f" ({error_type})"
    return text + (f" [known: {known}]" if known else "")


def _transition(old: str, new: str, ratio_old, ratio_new, moved, name_old, name_new) -> str:
    if old != new:
        return f"{old} -> {new}"
    # the same verdict: what moved is the output, by this share of the tolerance
    machines = f" ({name_old} -> {name_new})" if name_old != name_new else ""
    if math.isnan(moved):
        return f"{old}, bits moved{machines}"
    return f"{old}, share of tolerance {ratio_old:.3g} -> {ratio_new:.3g} (moved {moved:.2g}){machines}"


def transitions(d: Diff) -> pd.DataFrame:
    """One line per (class, framework, api, transition): count and example cases."""
    ch = d.changes()
    if ch.empty:
        return pd.DataFrame(columns=["class", "framework", "api", "transition", "count", "examples"])
    old = [_state(*s) for s in zip(ch["verdict_old"], ch["known_old"].fillna(""), ch["variants_old"].fillna(""),
                                   ch["error_type_old"].fillna(""))]
    new = [_state(*s) for s in zip(ch["verdict_new"], ch["known_new"].fillna(""), ch["variants_new"].fillna(""),
                                   ch["error_type_new"].fillna(""))]
    ch = ch.assign(transition=[_transition(*t) for t in zip(old, new, ch["max_tol_ratio_old"], ch["max_tol_ratio_new"],
                                                             ch["moved"], ch["device_name_old"], ch["device_name_new"])])
    grouped = ch.groupby(["class", "framework", "api", "transition"]).agg(
        count=("case_id", "size"), examples=("case_id", lambda s: ", ".join(list(dict.fromkeys(s))[:3]))).reset_index()
    grouped["order"] = grouped["class"].map({c: i for i, c in enumerate(CLASSES)})
    return grouped.sort_values(["order", "count"], ascending=[True, False]).drop(columns="order")


def summary_text(d: Diff, limit: int = 40) -> str:
    counts = d.counts()
    lines = [f"{d.old_label} -> {d.new_label}: {len(d.pairs)} rows compared; "
             + ", ".join(f"{n} {c}" for c, n in counts.items())]
    lines += [f"notice: {n}" for n in d.notices]
    table = transitions(d)
    for r in table.head(limit).itertuples(index=False):
        lines.append(f"  {r[0]:<10} {r.count:>5}  {r.framework} {r.api}: {r.transition}   e.g. {r.examples}")
    if len(table) > limit:
        lines.append(f"  ... {len(table) - limit} more groups (diff.html, --json)")
    if not sum(counts.values()):
        lines.append("  no changes: every row has the same verdict, variant, error, expectation and bits")
    elif not sum(n for c, n in counts.items() if c != "drift"):
        lines.append("  no changes of verdict, variant, error or expectation; only bits moved (drift)")
    return "\n".join(lines)


def as_json(d: Diff) -> dict:
    ch = d.changes()
    rows = ch.replace({np.nan: None}).to_dict(orient="records")
    return {"old": d.old_label, "new": d.new_label, "counts": d.counts(), "compared": int(len(d.pairs)),
            "notices": d.notices, "key": KEY, "transitions": transitions(d).to_dict(orient="records"), "rows": rows}


def write_json(d: Diff, path: Path) -> None:
    atomic_write_bytes(Path(path), (json.dumps(as_json(d), indent=1, default=str) + "\n").encode())


CSS = """body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; font-size: 12px; } th, td { border: 1px solid #ccc; padding: 3px 6px;
text-align: left; vertical-align: top; } th { background: #f0f0f0; } .regression, .missing { background: #fde2e2; }
.fix { background: #e2f5e2; } .changed, .new { background: #fff6d6; } .drift { background: #eef3fb; } .mono { font-family: ui-monospace, monospace;
overflow-wrap: anywhere; }"""


def html_table(d: Diff) -> str:
    table = transitions(d)
    if table.empty:
        return "<p>No changes.</p>"
    esc = lambda v: html.escape(str(v))  # noqa: E731
    rows = "".join(f'<tr class="{esc(r[0])}"><td>{esc(r[0])}</td><td>{esc(r.count)}</td><td>{esc(r.framework)}</td>'
                   f'<td>{esc(r.api)}</td><td class="mono">{esc(r.transition)}</td><td>{esc(r.examples)}</td></tr>'
                   for r in table.itertuples(index=False))
    return ("<table><tr><th>class</th><th>rows</th><th>framework</th><th>api</th><th>transition</th>"
            f"<th>example cases</th></tr>{rows}</table>")


def write_html(d: Diff, path: Path) -> None:
    counts = ", ".join(f"{n} {c}" for c, n in d.counts().items())
    notices = "".join(f"<p><b>notice:</b> {html.escape(n)}</p>" for n in d.notices)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>xent diff</title><style>{CSS}</style></head>"
            f"<body><h1>{html.escape(d.old_label)} &rarr; {html.escape(d.new_label)}</h1><p>{len(d.pairs)} rows "
            f"compared: {html.escape(counts)}.</p>{notices}{html_table(d)}</body></html>\n")
    atomic_write_bytes(Path(path), page.encode())


def failed(d: Diff, fail_on: tuple[str, ...]) -> bool:
    counts = d.counts()
    return any(counts.get(c, 0) for c in fail_on)

