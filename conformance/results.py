"""The result row, defined once, and the pure step from an observation to rows.

Data flows one way: a golden case and what a framework returned for it (an `Observed`
per output) go through the classifier (verdicts.classify) and the expectations
(expectations.Matcher) into one `ResultRow` per output. The runner only observes; the
report only reads rows.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np

from reference.formats import FORMATS
from reference.golden import OUTPUTS, GoldenCase, value_features
from reference.ops import OPS

from . import verdicts
from .expectations import Matcher

if TYPE_CHECKING:  # pandas loads only where frames are made (half a second)
    import pandas as pd

NO_API = "(no API)"


@dataclass
class ResultRow:
    suite: str
    suite_hash: str  # the golden suite's identity (its cases and their checksums)
    case_id: str
    case_sha256: str  # the golden file's checksum: runs of different golden suites are told apart
    op: str
    features: str  # comma-separated
    tags: str
    params: str  # the case's parameters, JSON
    framework: str
    framework_version: str
    versions: str  # the runtime's installed distributions that expectations may scope by, JSON
    runtime: str  # the interpreter a framework ran under ("local": the one running xent)
    mode: str  # how the framework ran it: eager, compile, function, xla, jit (its adapter's modes)
    api: str
    device: str  # "cpu", "cuda:0", "gpu:0"
    device_name: str  # what decides the numbers: CPU model and vector ISA, or GPU model
    dtype: str
    output: str
    verdict: str
    detail: str
    variants: str  # every variant the output equals, comma-separated
    expected_kind: str
    observed_kind: str
    max_ulp: float
    max_abs_err: float
    max_tol_ratio: float
    median_ulp: float
    expected_values: str
    observed_values: str
    inputs: str
    known: str  # the expectation that explains it, or ""
    known_reason: str
    evidence: str  # its links, space-separated
    accepted_variant: str  # the variant that expectation accepts
    # what was observed, kept so a stored run can be classified again
    observed_dtype: str
    observed_shape: str  # comma-separated
    observed_bits: bytes  # the raw bit patterns, little-endian
    error_type: str
    error_message: str
    domain_errors: str  # the exception types the framework declares for invalid input, comma-separated
    # a diverging task's reproducer script (conformance/repro.py), "" otherwise
    reproducer: str = ""


COLUMNS = [f.name for f in fields(ResultRow)]
# what tells one row from every other of a run, or pairs it with its like in another run (diff)
IDENTITY = ["suite", "case_id", "framework", "runtime", "mode", "api", "device", "dtype", "output"]
# a task's identity: its rows (one per output) share it
TASK = [k for k in IDENTITY if k != "output"]
# columns later versions added: a stored file without them reads with these values
ADDED_COLUMNS = {"reproducer": ""}
FLOAT_COLUMNS = [f.name for f in fields(ResultRow) if f.type == "float"]


@dataclass
class RunInfo:
    """What a run knows beside its rows; a results file keeps it as JSON in its metadata."""

    # "<framework> (<runtime>)" -> {"used": [ids], "witnessed": [ids]}: what xent merge judges staleness over
    expectations: dict = field(default_factory=dict)
    stale: dict = field(default_factory=dict)  # "<framework> (<runtime>)" -> ids of stale expectations
    witnesses: str = ""  # the source of the witnesses (a baseline), "" for none
    shard: list | None = None  # [k, n] of a shard's run
    incomplete: dict | None = None  # {"tasks_not_run": int (-1: unknown), "why": str}
    missing_cases: list = field(default_factory=list)  # [suite, case_id] a reclassified run dropped

    def to_json(self) -> str:
        return json.dumps(asdict(self))  # keys in insertion order, as pandas kept attrs

    def as_attrs(self) -> dict:
        """The info as a frame's attrs held it before RunInfo: an unset field absent."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict) -> RunInfo:
        """Keys this version does not know (a later one's) are left out."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str | bytes) -> RunInfo:
        return cls.from_dict(json.loads(text))


@dataclass
class Run:
    """A run's result: its rows (a results frame, columns COLUMNS) and its info."""

    rows: pd.DataFrame
    info: RunInfo = field(default_factory=RunInfo)


@dataclass(frozen=True)
class Task:
    """One (case, dtype, api, device) a framework runs."""

    suite: str
    suite_hash: str
    case: GoldenCase
    dtype: str
    api: str
    device_label: str
    device_name: str
    device_id: str
    mode: str


def suite_hash(cases: list[GoldenCase]) -> str:
    return hashlib.sha256("\n".join(sorted(f"{c.id} {c.entry['sha256']}" for c in cases)).encode()).hexdigest()


SMALL = 64  # arrays up to this many values are shown whole


def compact(values: np.ndarray) -> str:
    """Every value of a small array; a summary of a large one (range, specials, the first few)."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if flat.size <= SMALL:
        return verdicts.show(values, SMALL)
    finite = flat[np.isfinite(flat)]
    specials = ", ".join(f"{n} {name}" for name, n in (("nan", int(np.isnan(flat).sum())),
                                                      ("+inf", int((flat == np.inf).sum())),
                                                      ("-inf", int((flat == -np.inf).sum()))) if n)
    span = f"finite in [{float(finite.min())!r}, {float(finite.max())!r}]" if finite.size else "none finite"
    return f"{flat.size} values, {span}{'; ' + specials if specials else ''}; first {verdicts.show(flat, 6)}"


def describe_inputs(case: GoldenCase, arrays: dict, dtype: str) -> str:
    """The case's inputs in the dtype: every value of a small case, a summary of a large one."""
    parts = [f"input{tuple(case.entry['input_shape'])}={compact(verdicts.values(arrays[f'input.{dtype}'], dtype))}"]
    p = case.params
    if OPS[case.op].has_targets:
        if p["target_kind"] == "index":
            target = np.asarray(arrays["target"]).reshape(-1)
            parts.append(f"target={target.tolist() if target.size <= SMALL else compact(target)}")
        else:
            parts.append(f"target={compact(verdicts.values(arrays[f'target.{dtype}'], dtype))}")
        for name, present in (("weight", p["weighted"]), ("pos_weight", p.get("pos_weighted"))):
            if present:
                parts.append(f"{name}={compact(verdicts.values(arrays[f'{name}.{dtype}'], dtype))}")
        if p["target_kind"] == "index":
            parts.append(f"ignore_index={p['ignore_index']}")
        parts.append(f"label_smoothing={p['label_smoothing']} reduction={p['reduction']}")
    return " ".join(parts)


def observed_columns(observed: verdicts.Observed) -> dict:
    if observed.status == "ok":
        return dict(observed_dtype=observed.dtype, observed_shape=",".join(map(str, observed.bits.shape)),
                    observed_bits=np.ascontiguousarray(observed.bits).astype(observed.bits.dtype.newbyteorder("<"))
                    .tobytes(), error_type="", error_message="")
    return dict(observed_dtype="", observed_shape="", observed_bits=b"", error_type=observed.error_type or observed.status,
                error_message=observed.message)


def observed_from_columns(row) -> verdicts.Observed:
    """The Observed a stored row was classified from (the inverse of observed_columns)."""
    if row["observed_dtype"]:
        shape = tuple(int(d) for d in str(row["observed_shape"]).split(",") if d)
        storage = np.dtype(FORMATS[row["observed_dtype"]].storage).newbyteorder("<")
        bits = np.frombuffer(row["observed_bits"], dtype=storage).astype(storage.newbyteorder("=")).reshape(shape)
        return verdicts.Observed("ok", row["observed_dtype"], bits)
    status = row["error_type"] if row["error_type"] in ("unsupported", "crashed") else "raised"
    return verdicts.Observed(status, message=row["error_message"], error_type=row["error_type"])


@dataclass(frozen=True)
class Runtime:
    """Who observed: a framework's adapter under one interpreter."""

    framework: str
    version: str
    versions: dict  # distribution -> installed version
    name: str  # the runtime's stable name
    domain_errors: tuple[str, ...]


def row_features(case: GoldenCase, arrays: dict, dtype: str) -> str:
    """A row's features: its case's, and what its values are in the row's dtype."""
    return ",".join(sorted(set(case.entry["features"]) | set(value_features(case.entry, arrays, dtype))))


def rows_for(task: Task, arrays: dict, inputs: str, observed: dict[str, verdicts.Observed], rt: Runtime,
             matcher: Matcher, prepared: dict[str, verdicts.Prepared] | None = None,
             features: str | None = None) -> list[ResultRow]:
    """One row per output of a task: classified, matched against the expectations. `prepared`
    and `features`: verdicts.prepare and row_features of the task's case and dtype, when the
    caller keeps them for many tasks."""
    case = task.case
    if prepared is None:
        prepared = verdicts.prepare(case, arrays, task.dtype)
    if features is None:
        features = row_features(case, arrays, task.dtype)
    fixed = dict(  # the columns every output of the task shares
        suite=task.suite, suite_hash=task.suite_hash, case_id=case.id, case_sha256=case.entry["sha256"], op=case.op,
        features=features, tags=",".join(case.entry["tags"]),
        params=json.dumps(case.params, sort_keys=True), framework=rt.framework, framework_version=rt.version,
        versions=json.dumps(rt.versions, sort_keys=True), runtime=rt.name, domain_errors=",".join(rt.domain_errors),
        mode=task.mode, api=task.api, device=task.device_label, device_name=task.device_name, dtype=task.dtype, inputs=inputs)
    out = []
    judged = verdicts.classify_task(prepared, case.expect_error, {o: observed[o] for o in OUTPUTS}, task.dtype,
                                    rt.domain_errors)
    for output in OUTPUTS:
        v = judged[output]
        row = dict(
            fixed, output=output, verdict=v.verdict, detail=v.detail, variants=",".join(v.variants),
            expected_kind=v.expected_kind, observed_kind=v.observed_kind, max_ulp=v.max_ulp, max_abs_err=v.max_abs_err,
            max_tol_ratio=v.max_tol_ratio, median_ulp=v.median_ulp, expected_values=v.expected_values,
            observed_values=v.observed_values, **observed_columns(observed[output]))
        known = matcher.match(row)
        row.update(known=known.id if known else "", known_reason=known.reason if known else "",
                   evidence=" ".join(known.evidence) if known else "",
                   accepted_variant=known.accepted(row) if known and v.verdict == verdicts.VARIANT else "")
        out.append(ResultRow(**row))
    return out


def error_rows(task: Task, rt: Runtime, message: str) -> list[ResultRow]:
    """Rows for a task that could not be run or classified: `crashed`, with the reason."""
    case = task.case
    blank = dict.fromkeys([f.name for f in fields(ResultRow) if f.type == "str"], "")
    return [ResultRow(**{**blank, **dict(
        suite=task.suite, suite_hash=task.suite_hash, case_id=case.id, case_sha256=case.entry.get("sha256", ""),
        op=case.op, features=",".join(case.entry.get("features", [])), params=json.dumps(case.params, sort_keys=True),
        framework=rt.framework, framework_version=rt.version, versions=json.dumps(rt.versions, sort_keys=True),
        runtime=rt.name, mode=task.mode, api=task.api, device=task.device_label, device_name=task.device_name, dtype=task.dtype,
        output=output, verdict=verdicts.CRASHED, detail=f"error of the suite, not the framework: {message}"[:600],
        expected_kind="-", observed_kind="crashed", error_type="crashed", error_message=message[:600],
        domain_errors=",".join(rt.domain_errors)),
        "max_ulp": float("nan"), "max_abs_err": float("nan"), "max_tol_ratio": float("nan"), "median_ulp": float("nan"),
        "observed_bits": b""}) for output in OUTPUTS]


def with_added_columns(df):
    """A stored results frame in today's columns: what later versions added, filled with what it
    meant then; a file without `mode` ran each framework in its default mode."""
    from .adapters import default_mode
    df = df.assign(**{c: v for c, v in ADDED_COLUMNS.items() if c not in df.columns})
    if "mode" not in df.columns and "framework" in df.columns:
        df = df.assign(mode=df["framework"].map(default_mode))
    return df
