"""The report, built with pandas from a results file alone.

Data functions (pandas frames, also used by the command line): `summary`, `differences`,
`conformance_matrix`, `error_growth`, ... The page (`render_html`) is one self-contained file
made from the jinja2 template in `templates/` (autoescaped): per framework and runtime the
counts first, then the divergences grouped by cause (unexpected ones first), the conformance
matrix as a coloured grid, the error-growth plot (matplotlib, SVG inlined). A small inline
script sorts and filters; without it the page reads the same. Nothing is fetched.
"""
from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from reference.golden import atomic_write_bytes

from . import repro
from .results import COLUMNS, FLOAT_COLUMNS, ResultRow, Run, RunInfo, with_added_columns
from .verdicts import CONFORMS, UNSUPPORTED, VERDICTS

TEMPLATES = Path(__file__).with_name("templates")
DTYPE_ORDER = ("float64", "float32", "float16", "bfloat16")
# a reproducer longer than this is only linked (a large user case holds every input value)
INLINE_REPRODUCER_CHARS = 20_000
MATRIX_COLUMNS = 38  # features per grid: more go to a second grid, so no grid is wider than a screen


def results_frame(rows: list[ResultRow]) -> pd.DataFrame:
    df = pd.DataFrame([vars(r) for r in rows], columns=COLUMNS)
    return df.astype({c: "float64" for c in FLOAT_COLUMNS})


def results_frame_from_dicts(rows: list[dict]) -> pd.DataFrame:
    return results_frame([ResultRow(**r) for r in rows])


# the parquet schema metadata key that holds a run's RunInfo, as JSON
RUN_KEY = b"xent.run"
PANDAS_ATTRS = b"PANDAS_ATTRS"  # pandas' key for a frame's attrs (DataFrame.to_parquet, read_parquet)


def write_results(run: Run | pd.DataFrame, path: Path) -> None:
    """The rows as parquet, the run's info (a bare frame: none) in the file's metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    if isinstance(run, pd.DataFrame):
        run = Run(run)
    table = pa.Table.from_pandas(run.rows, preserve_index=False)
    # the info also under pandas' key for a frame's attrs, where versions before RUN_KEY read it
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), RUN_KEY: run.info.to_json().encode(),
                                           PANDAS_ATTRS: json.dumps(run.info.as_attrs()).encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def read_run(path: Path) -> Run:
    """A results file, checked: one clear error naming the file and what is wrong with it."""
    import pyarrow.parquet as pq
    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such results file") from None
    except Exception as e:  # pyarrow's errors for a file that is not parquet
        raise ValueError(f"{path}: not a results file ({type(e).__name__}: {str(e)[:120]})") from None
    # a file written before RUN_KEY kept the info in pandas' attrs; cleared, as pandas copies
    # attrs deeply on every step
    attrs, df.attrs = df.attrs, {}
    df = with_added_columns(df)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a results file (missing columns {', '.join(missing)})")
    unknown = sorted(set(df["verdict"]) - set(VERDICTS))
    if unknown:
        raise ValueError(f"{path}: column 'verdict': unknown verdict {str(unknown[0])[:40]!r}")
    stored = pq.read_schema(path).metadata or {}
    return Run(df, RunInfo.from_json(stored[RUN_KEY]) if RUN_KEY in stored else RunInfo.from_dict(attrs))


def read_results(path: Path) -> pd.DataFrame:
    """A results file's rows, checked (read_run)."""
    return read_run(path).rows


# --- tables -------------------------------------------------------------------------

def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Rows (framework, api), columns verdicts, cells counts of outputs."""
    table = df.pivot_table(index=["framework", "api"], columns="verdict", values="case_id",
                           aggfunc="count", fill_value=0)
    return table.reindex(columns=[v for v in VERDICTS if v in table.columns])


def _diverging(df: pd.DataFrame) -> pd.Series:
    return ~df["verdict"].isin([CONFORMS, UNSUPPORTED])


# who observed: a report's section, a line of the counts
WHO = ["framework", "runtime", "mode"]


def framework_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Per (framework, runtime, mode): outputs that diverge unexpectedly, diverge as the
    expectations file says, conform, and are unsupported."""
    d = _diverging(df)
    flags = pd.DataFrame({"framework": df["framework"], "runtime": df["runtime"], "mode": df["mode"],
                          "version": df["framework_version"],
                          "unexpected": d & (df["known"] == ""), "known": d & (df["known"] != ""),
                          "conforming": df["verdict"] == CONFORMS, "unsupported": df["verdict"] == UNSUPPORTED})
    counts = flags.groupby(WHO).agg(
        version=("version", "first"), unexpected=("unexpected", "sum"), known=("known", "sum"),
        conforming=("conforming", "sum"), unsupported=("unsupported", "sum"), outputs=("version", "size"))
    return counts.reset_index()


def inexpressible(df: pd.DataFrame) -> pd.DataFrame:
    """Per (framework, runtime): the cases no API of the framework could express (every row of
    the case unsupported), how many, the first few ids and one reason."""
    columns = ["framework", "runtime", "count", "examples", "reason"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    by_case = df.groupby(["framework", "runtime", "suite", "case_id"], sort=False).agg(
        none=("verdict", lambda v: bool((v == UNSUPPORTED).all())), reason=("detail", "first")).reset_index()
    none = by_case[by_case["none"]]
    if none.empty:
        return pd.DataFrame(columns=columns)
    return none.groupby(["framework", "runtime"], sort=False).agg(
        count=("case_id", "size"), examples=("case_id", lambda s: ", ".join(list(s)[:3])),
        reason=("reason", "first")).reset_index()[columns]


def _ulp_text(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3g}"


def _ratio_text(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2f}"


def _exploded_features(df: pd.DataFrame) -> pd.DataFrame:
    tested = df[df["verdict"] != UNSUPPORTED]
    return tested.assign(feature=tested["features"].str.split(",")).explode("feature")


def matrix_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Per (framework, runtime, api, feature) over the supported outputs: how many, how many
    conform, diverge as known, diverge unexpectedly; cases; and over the conforming ones the
    largest share of the tolerance used and the worst ULP error."""
    tested = _exploded_features(df)
    if tested.empty:
        return pd.DataFrame()
    conforming = tested["verdict"] == CONFORMS
    d = ~conforming
    return tested.assign(
        conforms=conforming, known_div=d & (tested["known"] != ""), unexpected=d & (tested["known"] == ""),
        ratio=tested["max_tol_ratio"].where(conforming), ulps=tested["max_ulp"].where(conforming),
    ).groupby([*WHO, "api", "feature"]).agg(
        outputs=("conforms", "size"), conforming=("conforms", "sum"), known=("known_div", "sum"),
        unexpected=("unexpected", "sum"), cases=("case_id", "nunique"), worst_ratio=("ratio", "max"),
        worst_ulp=("ulps", "max")).reset_index()


def conformance_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """API x feature: share of supported outputs that conform, and, over the conforming ones,
    the largest share of the tolerance used and the worst ULP error (text cells)."""
    cells = matrix_cells(df)
    if cells.empty:
        return pd.DataFrame()
    cells = cells.groupby(["api", "feature"]).agg(
        outputs=("outputs", "sum"), conforming=("conforming", "sum"), worst_ratio=("worst_ratio", "max"),
        worst_ulp=("worst_ulp", "max"))
    text = cells.apply(lambda r: f"{r['conforming'] / r['outputs']:.0%} ({_ratio_text(r['worst_ratio'])} tol, "
                                 f"{_ulp_text(r['worst_ulp'])} ulp)", axis=1)
    return text.unstack("feature").fillna("")


def coverage(df: pd.DataFrame) -> pd.DataFrame:
    """Feature x api: how many cases exercised each feature on each API (unsupported excluded)."""
    tested = _exploded_features(df)
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
    diff = df[_diverging(df)]
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


def error_growth_svg(df: pd.DataFrame) -> str:
    """The error-growth plot as an inline SVG (matplotlib): one panel per dtype, log2 classes
    across, ULP error up (symlog), per API a solid line for the worst error and a dashed one
    for the median. "" when no results have several vocabulary sizes."""
    growth = error_growth(df)
    if growth.empty:
        return ""
    import matplotlib  # the Figure API alone: no pyplot, no global backend switched
    import matplotlib.ticker
    from matplotlib.figure import Figure

    dtypes = [d for d in DTYPE_ORDER if d in set(growth["dtype"])] + sorted(set(growth["dtype"]) - set(DTYPE_ORDER))
    apis = sorted(growth["api"].unique())
    colors = matplotlib.colormaps["tab10"].colors
    style = {"svg.fonttype": "none", "svg.hashsalt": "xent-report", "font.size": 9, "axes.titlesize": 10,
             "path.simplify": True}
    with matplotlib.rc_context(style):
        fig = Figure(figsize=(min(3.4 * len(dtypes), 12.5), 2.9))
        axes = fig.subplots(1, len(dtypes), squeeze=False, sharey=True)
        for ax, dtype in zip(axes[0], dtypes):
            panel = growth[growth["dtype"] == dtype]
            for i, api in enumerate(apis):
                line = panel[panel["api"] == api].sort_values("classes")
                if line.empty:
                    continue
                color = colors[i % len(colors)]
                ax.plot(line["classes"], line["worst_ulp"], color=color, lw=1.4, label=api)
                ax.plot(line["classes"], line["median_ulp"], color=color, lw=1.1, ls="--")
            ax.set_xscale("log", base=2)
            ticks = sorted(panel["classes"].unique())
            ax.set_xticks(ticks, [f"{int(c):,}" for c in ticks], minor=False)
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_yscale("symlog", linthresh=1)
            ax.set_title(dtype)
            ax.set_xlabel("classes")
            ax.grid(alpha=0.3, lw=0.5)
        axes[0][0].set_ylabel("ULP error of the loss")
        handles, labels = axes[0][0].get_legend_handles_labels()
        for ax in axes[0][1:]:  # an API absent from the first panel still gets its entry
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="lower center", ncols=min(3, len(labels)), frameon=False, fontsize=8)
        fig.tight_layout(rect=(0, 0.06 * math.ceil(len(labels) / 3) + 0.02, 1, 1))
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # no XML prolog nor DOCTYPE inside the page


# --- the page's view of the rows ------------------------------------------------------

@dataclass
class Output:
    """One diverging row of a case: what was expected, what came back."""

    dtype: str
    device: str
    output: str
    expected: str
    observed: str
    ulp: str
    tol: str
    detail: str
    output_span: int = 1  # rows this row's output cell spans (0: the row above spans it)
    detail_span: int = 1


@dataclass
class Reproducer:
    label: str  # dtype and device
    file: str  # relative to the run's folder, where report.html is written
    text: str  # the script, inlined for an item's first task only (the others differ in dtype or device)


@dataclass
class Item:
    """A case of a group: its inputs, its diverging outputs, its reproducers."""

    id: str
    case_id: str
    features: str
    inputs: list[tuple[str, str]]  # (dtype label or "", the inputs text, one name=value per line)
    outputs: list[Output]
    reproducers: list[Reproducer]  # one per task: the first inlined, every one linked


@dataclass
class Group:
    """Divergences of one cause: framework and runtime, API, verdict, variant, expectation."""

    id: str
    section: str  # the (framework, runtime) section's slug
    framework: str
    api: str
    verdict: str
    variant: str
    known: str
    reason: str
    evidence: list[str]
    outputs: int
    items: list[Item] = field(default_factory=list)


@dataclass
class Section:
    """A (framework, runtime, mode) and its counts."""

    slug: str
    framework: str
    runtime: str
    mode: str
    version: str
    devices: str
    unexpected: int
    known: int
    conforming: int
    unsupported: int
    outputs: int

    @property
    def label(self) -> str:
        return f"{self.framework} ({self.runtime}, {self.mode})"

    @property
    def who(self) -> tuple[str, str, str]:
        return self.framework, self.runtime, self.mode


_NAME = re.compile(r" (?=[A-Za-z_]\w*(?:\([^)]*\))?=)")


def _input_lines(text: str) -> str:
    """`input(2, 3)=[...] target=[...] reduction=mean`, one name=value per line."""
    return _NAME.sub("\n", str(text))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def _sections(df: pd.DataFrame) -> list[Section]:
    counts = framework_counts(df)
    named = df[df["device"] != "-"]
    sections, seen = [], set()
    for r in counts.itertuples(index=False):
        slug = _slug(f"{r.framework}-{r.runtime}-{r.mode}")
        while slug in seen:
            slug += "-x"
        seen.add(slug)
        rows = named[(named["framework"] == r.framework) & (named["runtime"] == r.runtime) & (named["mode"] == r.mode)]
        devices = ", ".join(f"{d} ({n})" for d, n in rows[["device", "device_name"]].drop_duplicates()
                            .sort_values("device").itertuples(index=False))
        sections.append(Section(slug, r.framework, r.runtime, r.mode, r.version, devices, int(r.unexpected), int(r.known),
                                int(r.conforming), int(r.unsupported), int(r.outputs)))
    return sections


_FLOAT = re.compile(r"(?<![\w.])-?(?:\d+\.\d*(?:e[+-]?\d+)?|\d+e[+-]?\d+)")


def _short_number(token: str, dtype: str) -> str:
    """A float64 repr of a value of `dtype`, as the shortest repr that reads back to the same
    value in that dtype (0.04420504719018936 in float32: 0.044205047); bfloat16 values use
    float32's repr, which holds them exactly."""
    kind = {"float32": np.float32, "bfloat16": np.float32, "float16": np.float16}.get(dtype)
    return _short_repr(token, kind) if kind else token


@cache
def _short_repr(token: str, kind) -> str:
    x = float(token)
    with np.errstate(all="ignore"):
        short = str(kind(x))
        # an integer keeps its digits (65504.0, not 6.55e+04); a number that is not a value of
        # the dtype (a parameter) is kept as it is
        return short if float(kind(x)) == x and x != round(x) else token


def _short(text: str, dtype: str) -> str:
    return _FLOAT.sub(lambda m: _short_number(m.group(0), dtype), str(text))


ORDER = {v: i for i, v in enumerate(DTYPE_ORDER + ("loss", "grad"))}


def _groups(df: pd.DataFrame, sections: list[Section]) -> tuple[list[Group], dict]:
    """The divergences grouped by cause, unexpected groups first; and (framework, runtime, mode,
    api, case) -> the ids of the items showing that case."""
    order = {s.who: i for i, s in enumerate(sections)}
    slug = {s.who: s.slug for s in sections}
    columns = ["framework", "runtime", "mode", "known", "api", "verdict", "variants", "accepted_variant", "case_id", "features",
               "dtype", "device", "output", "expected_values", "observed_values", "max_ulp", "max_tol_ratio", "detail",
               "inputs", "known_reason", "evidence", "reproducer"]
    by_cause: dict[tuple, list[dict]] = {}
    for r in df.loc[_diverging(df), columns].to_dict("records"):
        r["variant"] = (r["accepted_variant"] or r["variants"]).replace(",", ", ")
        by_cause.setdefault((r["framework"], r["runtime"], r["mode"], r["known"], r["api"], r["verdict"], r["variant"]),
                            []).append(r)
    causes = sorted(by_cause, key=lambda k: (k[3] != "", order[k[:3]], -len(by_cause[k]), k[4], k[5], k[6]))
    groups, where, n_items = [], {}, 0
    for n_group, key in enumerate(causes, 1):
        framework, runtime, mode, known, api, verdict, variant = key
        rows = by_cause[key]
        group = Group(f"g{n_group}", slug[(framework, runtime, mode)], framework, api, verdict, variant, known,
                      rows[0]["known_reason"], str(rows[0]["evidence"]).split(), len(rows))
        by_case: dict[str, list[dict]] = {}
        for r in rows:
            by_case.setdefault(r["case_id"], []).append(r)
        for case_id in sorted(by_case):
            n_items += 1
            where.setdefault((framework, runtime, mode, api, case_id), []).append(f"i{n_items}")
            group.items.append(_item(f"i{n_items}", case_id, by_case[case_id], variant))
        groups.append(group)
    return groups, where


def _item(item_id: str, case_id: str, rows: list[dict], variant: str) -> Item:
    """A case of a group: rows by output, dtype and device; an output's name and a detail that
    repeats the row above span their rows."""
    rows = sorted(rows, key=lambda r: (ORDER.get(r["output"], 9), ORDER.get(r["dtype"], 9), r["dtype"], r["device"]))
    outputs: list[Output] = []
    for r in rows:
        detail = "" if r["detail"].replace(",", ", ") == variant else _short(r["detail"], r["dtype"])
        o = Output(r["dtype"], r["device"], r["output"], _short(r["expected_values"], r["dtype"]) or "-",
                   _short(r["observed_values"], r["dtype"]) or "-", _ulp_text(r["max_ulp"]),
                   _ulp_text(r["max_tol_ratio"]), detail)
        head = next((p for p in reversed(outputs) if p.output_span), None)  # the row spanning this output
        if head is not None and head.output == o.output:
            head.output_span += 1
            o.output_span = 0
            top = next(p for p in reversed(outputs) if p.detail_span)
            if top.detail == o.detail and top.output == o.output:
                top.detail_span += 1
                o.detail_span = 0
        outputs.append(o)
    inputs = {}
    for r in rows:
        inputs.setdefault(_input_lines(_short(r["inputs"], r["dtype"])), []).append(r["dtype"])
    labelled = len(inputs) > 1
    files = {}  # a task's loss and grad rows share one reproducer
    for r in sorted(rows, key=lambda r: (ORDER.get(r["dtype"], 9), r["device"])):
        if r["reproducer"]:
            files.setdefault(repro.file_name(r), (f"{r['dtype']} {r['device']}", r["reproducer"]))
    reproducers = [Reproducer(label, name, text if i == 0 and len(text) <= INLINE_REPRODUCER_CHARS else "")
                   for i, (name, (label, text)) in enumerate(files.items())]
    return Item(item_id, case_id, rows[0]["features"].replace(",", ", "),
                [(", ".join(dict.fromkeys(dtypes)) if labelled else "", text) for text, dtypes in inputs.items()],
                outputs, reproducers)


@dataclass
class Cell:
    text: str
    css: str  # ok, known, unexpected; "low" where under half conform
    title: str
    link: str  # the id of its list of diverging cases, or ""


@dataclass
class CellList:
    """A matrix cell's diverging cases, each linked to the items that show it."""

    id: str
    label: str
    summary: str
    cases: list[tuple[str, list[str]]]


@dataclass
class MatrixRow:
    section: Section | None  # a block's header row
    api: str
    cells: list[Cell | None]


@dataclass
class Grid:
    prefixes: list[tuple[str, int]]  # (feature prefix, columns)
    features: list[tuple[str, str]]  # (full name, short label)
    rows: list[MatrixRow]


FEATURE_PREFIXES = ("op", "target", "reduction", "shape", "", "value", "classes", "dist")


def _prefix(feature: str) -> str:
    return feature.split(":", 1)[0] if ":" in feature else ""


def _matrix(df: pd.DataFrame, sections: list[Section], where: dict) -> tuple[list[Grid], list[CellList]]:
    cells = matrix_cells(df)
    if cells.empty:
        return [], []
    features = sorted(cells["feature"].unique(), key=lambda f: (
        FEATURE_PREFIXES.index(_prefix(f)) if _prefix(f) in FEATURE_PREFIXES else len(FEATURE_PREFIXES),
        _prefix(f), _natural(f)))
    by_key = {(r.framework, r.runtime, r.mode, r.api, r.feature): r for r in cells.itertuples(index=False)}
    d = _exploded_features(df[_diverging(df)])
    diverging = {k: g for k, g in d.groupby([*WHO, "api", "feature"])}
    lists: list[CellList] = []
    grids = []
    for chunk in range(0, len(features), MATRIX_COLUMNS):
        feats = features[chunk:chunk + MATRIX_COLUMNS]
        rows: list[MatrixRow] = []
        for s in sections:
            apis = sorted(cells[(cells["framework"] == s.framework) & (cells["runtime"] == s.runtime)
                                & (cells["mode"] == s.mode)]["api"].unique())
            if not apis:
                continue
            rows.append(MatrixRow(s, "", []))
            for api in apis:
                row = []
                for f in feats:
                    c = by_key.get((*s.who, api, f))
                    if c is None:
                        row.append(None)
                        continue
                    css = "unexpected" if c.unexpected else "known" if c.known else "ok"
                    title = (f"{c.conforming} of {c.outputs} outputs ({c.cases} cases) conform"
                             + (f", {c.known} known" if c.known else "") + (f", {c.unexpected} unexpected" if c.unexpected else "")
                             + (f"; at most {_ratio_text(c.worst_ratio)} of the tolerance, {_ulp_text(c.worst_ulp)} ulp"
                                if c.conforming else ""))
                    link = ""
                    if c.known or c.unexpected:
                        link = f"c{len(lists) + 1}"
                        g = diverging[(*s.who, api, f)]
                        cases = [(case, where.get((*s.who, api, case), []))
                                 for case in sorted(g["case_id"].unique())]
                        lists.append(CellList(link, f"{api} x {f}", f"{s.label}: {c.known + c.unexpected} of "
                                              f"{c.outputs} outputs diverge", cases))
                    share = int(100 * c.conforming // c.outputs)  # rounded down: 100 means all
                    row.append(Cell(str(share), css + (" low" if share < 50 else ""), title, link))
                rows.append(MatrixRow(None, api, row))
        prefixes = []
        for f in feats:
            p = _prefix(f)
            if prefixes and prefixes[-1][0] == p:
                prefixes[-1] = (p, prefixes[-1][1] + 1)
            else:
                prefixes.append((p, 1))
        grids.append(Grid(prefixes, [(f, f.split(":", 1)[-1]) for f in feats], rows))
    return grids, lists


def _natural(text: str) -> tuple:
    """classes:32768 before classes:131072."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


# --- HTML ---------------------------------------------------------------------------

SOURCE_LINK = re.compile(r"https://github\.com/[^/]+/([^/]+)/blob/([^/]+)/([^?]+)$")


def link_text(url: str) -> str:
    """What a link reads as: a GitHub source link as repository@ref:path#lines, a commit as its
    first 10 hex digits (the whole address stays the link's target); any other link as itself."""
    match = SOURCE_LINK.match(url)
    if not match:
        return url
    repo, ref, path = match.groups()
    return f"{repo}@{ref[:10] if re.fullmatch(r'[0-9a-f]{40}', ref) else ref}:{path}"


@cache
def _environment():
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["link_text"] = link_text
    return env


def _since(since) -> dict | None:
    """The top section of a run made with --baseline: what changed, regressions first."""
    if since is None:
        return None
    from markupsafe import Markup

    from . import diff
    counts = since.counts()
    return dict(old=since.old_label, new=since.new_label, compared=len(since.pairs), counts=counts,
                notices=since.notices, table=Markup(diff.html_table(since)),
                open=bool(counts.get("regression") or counts.get("missing")))


def render_html(df: pd.DataFrame, title: str = "xent-conformance report", since=None,
                info: RunInfo | None = None) -> str:
    """The page: a pure function of the results frame and the run's info (and of a baseline diff)."""
    from markupsafe import Markup

    info = info or RunInfo()
    df = with_added_columns(df)
    sections = _sections(df)
    groups, where = _groups(df, sections)
    grids, cell_lists = _matrix(df, sections, where)
    incomplete = None
    if info.incomplete:
        stopped = info.incomplete
        missing = "an unknown number of" if stopped.get("tasks_not_run", -1) < 0 else str(stopped["tasks_not_run"])
        incomplete = dict(missing=missing, why=stopped.get("why", ""))
    unsup = unsupported(df)
    page = _environment().get_template("report.html.j2").render(
        title=title, sections=sections, groups=groups, grids=grids, cell_lists=cell_lists,
        unexpected=[g for g in groups if not g.known], known=[g for g in groups if g.known],
        outputs=len(df), cases=df["case_id"].nunique(),
        incomplete=incomplete, stale={k: v for k, v in info.stale.items() if v},
        since=_since(since), growth=Markup(error_growth_svg(df)),
        unsupported=[] if unsup.empty else list(unsup.itertuples(index=False)),
        devices=df.loc[df["device"] != "-", "device"].nunique(),
        verdicts=[v for v in VERDICTS if v in {g.verdict for g in groups}],
        css=Markup((TEMPLATES / "report.css").read_text()), js=Markup((TEMPLATES / "report.js").read_text()))
    return page


def write_report(df: pd.DataFrame, path: Path, since=None, info: RunInfo | None = None) -> None:
    atomic_write_bytes(Path(path), render_html(df, since=since, info=info).encode("utf-8"))
