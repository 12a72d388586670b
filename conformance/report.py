"""The tolerance report, built with pandas from a results file alone.

Tables: a verdict summary per API, the conformance matrix (API x feature -> share
conforming and worst ULP error), and the semantic differences with the inputs that
showed them. `render_html` makes one self-contained page: no scripts, no fetches, every
string escaped.
"""
from __future__ import annotations

import html
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from reference.golden import atomic_write_bytes

from .results import COLUMNS, FLOAT_COLUMNS, ResultRow
from .verdicts import CONFORMS, UNSUPPORTED, VERDICTS


def results_frame(rows: list[ResultRow]) -> pd.DataFrame:
    df = pd.DataFrame([vars(r) for r in rows], columns=COLUMNS)
    return df.astype({c: "float64" for c in FLOAT_COLUMNS})


def results_frame_from_dicts(rows: list[dict]) -> pd.DataFrame:
    return results_frame([ResultRow(**r) for r in rows])


def write_results(df: pd.DataFrame, path: Path) -> None:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(Path(path), buf.getvalue())


def read_results(path: Path) -> pd.DataFrame:
    """A results file, checked: one clear error naming the file and what is wrong with it."""
    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such results file") from None
    except Exception as e:  # pyarrow's errors for a file that is not parquet
        raise ValueError(f"{path}: not a results file ({type(e).__name__}: {str(e)[:120]})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a results file (missing columns {', '.join(missing)})")
    unknown = sorted(set(df["verdict"]) - set(VERDICTS))
    if unknown:
        raise ValueError(f"{path}: column 'verdict': unknown verdict {str(unknown[0])[:40]!r}")
    return df


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Rows (framework, api), columns verdicts, cells counts of outputs."""
    table = df.pivot_table(index=["framework", "api"], columns="verdict", values="case_id",
                           aggfunc="count", fill_value=0)
    return table.reindex(columns=[v for v in VERDICTS if v in table.columns])


def _ulp_text(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3g}"


def conformance_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """API x feature: share of supported outputs that conform, and, over the conforming ones,
    the largest share of the tolerance used and the worst ULP error."""
    tested = df[df["verdict"] != UNSUPPORTED].assign(feature=lambda d: d["features"].str.split(","))
    tested = tested.explode("feature")
    if tested.empty:
        return pd.DataFrame()
    conforming = tested["verdict"] == CONFORMS
    grouped = tested.assign(ratio=tested["max_tol_ratio"].where(conforming),
                            ulps=tested["max_ulp"].where(conforming)).groupby(["api", "feature"]).agg(
        share=("verdict", lambda v: (v == CONFORMS).mean()), worst_ratio=("ratio", "max"), worst_ulp=("ulps", "max"))
    cells = grouped.apply(lambda r: f"{r['share']:.0%} ({_ratio_text(r['worst_ratio'])} tol, "
                                    f"{_ulp_text(r['worst_ulp'])} ulp)", axis=1)
    return cells.unstack("feature").fillna("")


def _ratio_text(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2f}"


def coverage(df: pd.DataFrame) -> pd.DataFrame:
    """Feature x api: how many cases exercised each feature on each API (unsupported excluded)."""
    tested = df[df["verdict"] != UNSUPPORTED].assign(feature=lambda d: d["features"].str.split(","))
    tested = tested.explode("feature")
    if tested.empty:
        return pd.DataFrame()
    return tested.groupby(["feature", "api"])["case_id"].nunique().unstack("api", fill_value=0)


def per_case(df: pd.DataFrame) -> pd.DataFrame:
    """Case x api: the worst verdict over dtypes, devices and outputs, with its count."""
    def worst(verdicts: pd.Series) -> str:
        top = max(verdicts, key=lambda v: (v != UNSUPPORTED, v != CONFORMS, -VERDICTS.index(v)))
        return f"{top} ({(verdicts == top).sum()}/{len(verdicts)})"
    return df.groupby(["case_id", "api"])["verdict"].agg(worst).unstack("api").fillna("")


def unsupported(df: pd.DataFrame) -> pd.DataFrame:
    """Why each API could not run some cases, and how many (outputs of all dtypes)."""
    rows = df[df["verdict"] == UNSUPPORTED]
    if rows.empty:
        return pd.DataFrame()
    return rows.groupby(["framework", "api", "detail"])["case_id"].nunique().rename("cases").reset_index()


def differences(df: pd.DataFrame) -> pd.DataFrame:
    """Every non-conforming, supported output, one line per (case, api, output, verdict, detail)."""
    diff = df[~df["verdict"].isin([CONFORMS, UNSUPPORTED])]
    if diff.empty:
        return diff
    keys = ["case_id", "framework", "api", "output", "verdict", "detail"]
    return diff.groupby(keys, sort=True).agg(
        dtypes=("dtype", lambda s: ", ".join(sorted(set(s)))),
        devices=("device", lambda s: ", ".join(sorted(set(s)))),
        worst_ulp=("max_ulp", "max"),
        inputs=("inputs", "first"), expected=("expected_values", "first"), observed=("observed_values", "first"),
        known=("known", "first"), reason=("known_reason", "first"), evidence=("evidence", "first"),
        accepted=("accepted_variant", "first"),
    ).reset_index()


def error_growth(df: pd.DataFrame) -> pd.DataFrame:
    """Per dtype, api and number of classes (cases tagged classes:N, the large suite): the
    worst and the median ULP error of the loss over the cases that compared finite values."""
    classes = df["features"].str.extract(r"(?:^|,)classes:(\d+)(?:,|$)")[0]
    rows = df.assign(classes=pd.to_numeric(classes)).dropna(subset=["classes", "max_ulp"])
    rows = rows[rows["output"] == "loss"]
    if rows.empty:
        return pd.DataFrame()
    return rows.groupby(["dtype", "api", "classes"]).agg(
        worst_ulp=("max_ulp", "max"), median_ulp=("median_ulp", "median")).reset_index()


PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f")


def _growth_svg(panel: pd.DataFrame, dtype: str) -> str:
    """One inline SVG: log2(classes) across, log10(1 + ulp) up, a solid line per API for the
    worst error and a dashed one for the median."""
    width, height, left, bottom, top, right = 700, 300, 60, 40, 30, 330
    xs = np.log2(panel["classes"].astype(float))
    ys = np.log10(1 + panel[["worst_ulp", "median_ulp"]].to_numpy(dtype=float))
    x0, x1 = float(xs.min()), max(float(xs.max()), float(xs.min()) + 1)
    y1 = max(1.0, float(np.nanmax(ys)))
    sx = lambda v: left + (v - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    sy = lambda v: height - bottom - v / y1 * (height - bottom - top)  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="{left}" y="18" font-size="13">{_esc(dtype)}: ULP error of the loss vs classes</text>',
             f'<line x1="{left}" y1="{sy(0)}" x2="{width - right}" y2="{sy(0)}" stroke="#444"/>',
             f'<line x1="{left}" y1="{sy(0)}" x2="{left}" y2="{top}" stroke="#444"/>']
    for c in sorted(panel["classes"].unique()):
        x = sx(np.log2(float(c)))
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 15}" font-size="10" text-anchor="middle">{int(c)}</text>')
    for k in range(0, int(np.ceil(y1)) + 1, max(1, int(np.ceil(y1 / 6)))):
        parts.append(f'<text x="{left - 5}" y="{sy(k) + 3:.1f}" font-size="10" text-anchor="end">{10.0 ** k - 1:.3g}</text>')
    for i, (api, line) in enumerate(panel.sort_values("classes").groupby("api")):
        color = PALETTE[i % len(PALETTE)]
        lx = np.log2(line["classes"].astype(float))
        for column, dash in (("worst_ulp", ""), ("median_ulp", ' stroke-dasharray="4 3"')):
            ly = np.log10(1 + line[column].astype(float))
            points = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(lx, ly) if np.isfinite(b))
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5"{dash} points="{points}"/>')
        parts.append(f'<text x="{width - right + 8}" y="{top + 14 * i + 10}" font-size="10" fill="{color}">{_esc(api)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def error_growth_html(df: pd.DataFrame) -> str:
    growth = error_growth(df)
    if growth.empty:
        return "<p>No results with several vocabulary sizes (run <code>xent run --suite large</code>).</p>"
    return "".join(_growth_svg(panel, dtype) for dtype, panel in growth.groupby("dtype"))


# --- HTML ---------------------------------------------------------------------------

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.mono, .mono { font-family: ui-monospace, monospace; white-space: pre-wrap; word-break: break-all; }
.unexpected { background: #fde2e2; } .known { background: #fff6d6; }
"""


def _esc(value) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return html.escape(str(value), quote=True)


def _link(url: str) -> str:
    if url.startswith(("https://", "http://")):
        return f'<a href="{_esc(url)}">{_esc(url)}</a>'
    return _esc(url)


def _links(urls: str) -> str:
    return "<br>".join(_link(u) for u in str(urls).split())


def _differences_html(diff: pd.DataFrame) -> str:
    if diff.empty:
        return "<p>No semantic differences.</p>"
    head = ["case", "framework / api", "output", "verdict", "detail", "dtypes", "inputs", "expected",
            "observed", "known divergence"]
    rows = []
    for r in diff.itertuples(index=False):
        accepted = f" (accepts {_esc(r.accepted)})" if r.accepted else ""
        known = f"<b>{_esc(r.known)}</b>{accepted}: {_esc(r.reason)}<br>{_links(r.evidence)}" if r.known \
            else "<b>unexpected</b>"
        cells = [_esc(r.case_id), f"{_esc(r.framework)}<br>{_esc(r.api)}", _esc(r.output), _esc(r.verdict),
                 _esc(r.detail), _esc(r.dtypes), f'<span class="mono">{_esc(r.inputs)}</span>',
                 f'<span class="mono">{_esc(r.expected)}</span>', f'<span class="mono">{_esc(r.observed)}</span>', known]
        css = "known" if r.known else "unexpected"
        rows.append(f'<tr class="{css}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>")


def _incomplete_html(df: pd.DataFrame) -> str:
    info = df.attrs.get("incomplete")
    if not info:
        return ""
    missing = "an unknown number of" if info.get("tasks_not_run", -1) < 0 else str(info["tasks_not_run"])
    return (f'<p class="unexpected"><b>INCOMPLETE</b>: {_esc(missing)} tasks not run '
            f'({_esc(info.get("why", ""))}); every row here is a finished task.</p>')


def _since_html(since) -> str:
    """The top section of a run made with --baseline: what changed, regressions first."""
    from . import diff
    counts = ", ".join(f"{n} {c}" for c, n in since.counts().items())
    notices = "".join(f"<p><b>notice:</b> {_esc(n)}</p>" for n in since.notices)
    return (f"<h2>Changed since the baseline</h2><p>{_esc(since.old_label)} &rarr; {_esc(since.new_label)}: "
            f"{len(since.pairs)} rows compared; {_esc(counts)}.</p>{notices}{diff.html_table(since)}")


def render_html(df: pd.DataFrame, title: str = "xent-conformance report", since=None) -> str:
    versions = df[["framework", "runtime", "framework_version"]].drop_duplicates().sort_values(["framework", "runtime"])
    if df["runtime"].nunique() > 1:  # versions side by side: every table tells the runtimes apart
        df = df.assign(api=df["api"] + " [" + df["runtime"] + "]")
    named = df[df["device"] != "-"][["framework", "device", "device_name"]].drop_duplicates()
    devices = "; ".join(f"{f} {d}: {n}" for f, d, n in named.sort_values(["framework", "device"]).itertuples(index=False))
    diff = differences(df)
    unexpected = int((diff["known"] == "").sum()) if not diff.empty else 0
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        "<p>" + "; ".join(f"{_esc(f)} {_esc(v)} ({_esc(r)})" for f, r, v in versions.itertuples(index=False))
        + f"<br>devices: {_esc(devices)}<br>{len(df)} outputs from {df['case_id'].nunique()} cases; "
        f"{len(diff)} semantic differences, {unexpected} not in the expectations file.</p>",
        _incomplete_html(df),
        _since_html(since) if since is not None else "",
        "<h2>Summary</h2>", summary(df).to_html(escape=True),
        "<h2>Semantic differences</h2>",
        "<p>Every output that does not conform, with the case's inputs (first dtype shown). "
        "Known divergences carry their reason and evidence.</p>",
        _differences_html(diff),
        "<h2>Error growth</h2><p>Worst (solid) and median (dashed) ULP error of the loss against the "
        "number of classes, per API.</p>",
        error_growth_html(df),
        "<h2>Conformance matrix</h2><p>Share of supported outputs that conform; over the conforming ones, "
        "the largest fraction of the tolerance used and the worst error in ULPs of the expected value "
        "(large where the exact result cancels to almost nothing: docs/tolerance.md).</p>",
        conformance_matrix(df).to_html(escape=True),
        "<h2>Cases</h2><p>Per case and API, the least conforming verdict over dtypes, devices and outputs "
        "(how many of the outputs have it).</p>",
        per_case(df).to_html(escape=True),
        "<h2>Unsupported</h2><p>What each API cannot express, and for how many cases.</p>",
        unsupported(df).to_html(escape=True, index=False),
        "<h2>Coverage</h2><p>Cases that exercised each feature on each API.</p>",
        coverage(df).to_html(escape=True),
        "</body></html>\n",
    ]
    return "\n".join(parts)


def write_report(df: pd.DataFrame, path: Path, since=None) -> None:
    atomic_write_bytes(Path(path), render_html(df, since=since).encode("utf-8"))
