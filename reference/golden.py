"""Golden files: the reference's expected outputs, as exact bit patterns per dtype.

A suite is a folder holding `manifest.json` and one `.npz` per case. Arrays are stored as
unsigned bit patterns (`input.float16` is uint16, ...), so bfloat16 needs no pickled
dtype and loading uses allow_pickle=False. Files are written deterministically: the
same case definitions give byte-identical files.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataclasses import replace
from fractions import Fraction

from . import fast, rounding
from .casefile import CaseSpec, resolve
from .formats import FORMATS, NAN, NEG_INF, POS_INF, FloatFormat, decode, to_float64
from .losses import DomainError, Outputs, rows_of
from .op import ExactInputs
from .ops import OPS
from .semantics import CANONICAL, VARIANTS, for_dtype

GENERATOR_VERSION = "1"
OUTPUTS = ("loss", "grad")


class GoldenFileError(ValueError):
    """A golden suite that is missing, corrupt or from another generator version."""


# --- writing --------------------------------------------------------------------

def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a result file is for everyone
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz that np.load reads, with fixed member order and timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[name], order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def _bits(values: np.ndarray, fmt) -> np.ndarray:
    if values.dtype == np.float64:  # exact float64 values (a stored array): one correct rounding
        return fast.round_to_format(values, fmt)
    return np.array([resolve(v, fmt) for v in values.reshape(-1)], dtype=fmt.storage).reshape(values.shape)


def _exact(bits: np.ndarray, fmt) -> np.ndarray:
    out = np.empty(bits.size, dtype=object)
    out[:] = [decode(fmt, int(b)) for b in bits.reshape(-1)]
    return out.reshape(bits.shape)


def features(spec: CaseSpec) -> list[str]:
    """What a case exercises, derived from its definition (the report's feature axis)."""
    found = {f"op:{spec.op}"}
    shape = spec.input.shape
    found.add("shape:unbatched" if len(shape) == 1 else "shape:NxC" if len(shape) == 2 else "shape:NxCxd...")
    if 0 in shape:
        found.add("empty")
    if shape[0 if len(shape) == 1 else 1] == 1:
        found.add("one_class")
    op = OPS[spec.op]
    if spec.input.dtype == np.float64:  # a stored array: its special and boundary values
        x = spec.input
        for name, present in (("nan", np.isnan(x).any()), ("+inf", (x == np.inf).any()), ("-inf", (x == -np.inf).any()),
                              ("-0", ((x == 0) & np.signbit(x)).any()), ("0", ((x == 0) & ~np.signbit(x)).any()),
                              ("1", op.input_kind == "probs" and (x == 1).any())):
            if present:
                found.add(f"value:{name}")
    for v in spec.input.reshape(-1) if spec.input.dtype == object else ():
        if isinstance(v, tuple):
            found.add(f"value:{v[2]}")
        elif isinstance(v, str):
            found.add(f"value:{v}")
        elif v == 0 or (v == 1 and op.input_kind == "probs"):  # a log of 0 or of 1 - 1, a kink at 0
            found.add(f"value:{v}")
    if op.has_targets:
        found.add(f"target:{spec.target_kind}")
        found.add(f"reduction:{spec.reduction}")
        if spec.weight is not None and any(w != 1 for w in spec.weight.reshape(-1)):
            found.add("weight")
        if spec.pos_weight is not None and any(w != 1 for w in spec.pos_weight.reshape(-1)):
            found.add("pos_weight")
        if spec.label_smoothing:
            found.add("label_smoothing")
        if spec.target_kind == "index":
            ignored = spec.target == spec.ignore_index
            if ignored.any():
                found.add("ignore_index")
            if ignored.size and ignored.all():
                found.add("all_ignored")
            counted = spec.target[~ignored]
            if spec.weight is not None and counted.size and sum(spec.weight[t] for t in counted) == 0:
                found.add("zero_weight_sum")  # the mean's denominator sum(w[y]) is 0
    return sorted(found)


WIDE_ROWS = 4096  # classes from which a row's reductions are long sequential sums (LLM vocabularies)


def value_features(entry: dict, arrays: dict, dtype: str) -> list[str]:
    """What a case's values are in one dtype, after their rounding to it: the triggers of
    mechanisms that depend on the values, not on how the case was written (docs/cases.md).
    A result row's features are its case's (`features`) and these, for the row's dtype."""
    fmt, op = FORMATS[dtype], OPS[entry["op"]]
    shape = entry["input_shape"]
    found = set()
    classes = shape[0] if len(shape) == 1 else shape[1] if len(shape) > 1 else 0
    if classes >= WIDE_ROWS:
        found.add("wide_rows")
    if classes > 2 ** fmt.precision:  # a sum of one per class is inexact in the dtype
        found.add("class_count_inexact")
    if classes > fmt.max_finite:  # ... and overflows it
        found.add("class_count_overflows")
    bits = arrays.get(f"input.{dtype}")
    if bits is not None and bits.size:
        x = to_float64(bits, fmt)
        for name, present in (("nan", np.isnan(x)), ("+inf", x == np.inf), ("-inf", x == -np.inf)):
            if present.any():
                found.add(f"value:{name}")
        with np.errstate(invalid="ignore"):
            if ((x != 0) & (np.abs(x) < float(fmt.min_normal))).any():
                found.add("value:subnormal")  # a nonzero input below the dtype's smallest normal (DAZ reads it as 0)
        if op.input_kind == "probs" and classes and _row_sum_square_underflows(x, fmt):
            found.add("row_sum_square_underflows")  # a probability row sum S > 0 with S * S below the smallest normal
        if op.input_kind == "logits" and classes:  # x - max(row) is inf - inf: a row maximum that is infinite
            with np.errstate(invalid="ignore"):
                row_max = np.max(x, axis=0 if len(shape) == 1 else 1)
            if np.isinf(row_max).any():
                found.add("row_max_infinite")
    params = entry.get("params", {})
    if _mean_sum_overflows(entry, arrays, dtype):
        found.add("mean_sum_overflows")  # a finite mean whose sum, taken first in the dtype, overflows
    if params.get("target_kind") == "index" and "target" in arrays and arrays["target"].size:
        labels = np.asarray(arrays["target"], dtype=np.float64)
        if (to_float64(fast.round_to_format(labels, fmt), fmt) != labels).any():
            found.add("labels_inexact")  # a label cast to the dtype names another class (or inf)
        counted = labels[labels != params.get("ignore_index", -100)]
        if classes and ((counted < 0) | (counted >= classes)).any():
            found.add("labels_out_of_range")  # a class index outside [0, C) that is not ignored
    if params.get("target_kind") == "probs" and f"target.{dtype}" in arrays and arrays[f"target.{dtype}"].size:
        t = to_float64(arrays[f"target.{dtype}"], fmt)
        rows, _ = rows_of(t)
        if any(_row_sum(r) != 1 for r in rows):
            found.add("targets_unnormalised")  # the probability rows do not sum to 1 in the dtype
    return sorted(found)


def _mean_sum_overflows(entry: dict, arrays: dict, dtype: str) -> bool:
    """A mean that is finite in the dtype while the sum it divides (the mean times its
    denominator: sum of w[y] over counted positions for weighted class-index targets, else the
    count of positions, or of elements for elementwise losses) lies beyond the dtype's largest
    value: an implementation that sums in the dtype (bfloat16 in float32: the same range) before
    dividing gets +-inf. Read from the golden file's expected mean (absent: False)."""
    params, fmt = entry.get("params", {}), FORMATS[dtype]
    mean = arrays.get(f"expected.{dtype}.canonical.loss")
    if params.get("reduction") != "mean" or mean is None or mean.size != 1:
        return False
    m = float(to_float64(mean.reshape(-1), fmt)[0])
    if not np.isfinite(m) or m == 0:
        return False
    shape, op = tuple(entry["input_shape"]), OPS[entry["op"]]
    if params.get("target_kind") == "index" and "target" in arrays:
        labels = np.asarray(arrays["target"]).reshape(-1)
        counted = labels[labels != params.get("ignore_index", -100)]
        weight = arrays.get(f"weight.{dtype}")
        if weight is not None:
            w = to_float64(weight, fmt)
            denominator = sum((Fraction(float(w[c])) for c in counted if 0 <= c < w.size), Fraction(0))
        else:
            denominator = Fraction(int(counted.size))
    elif op.fields.targets and op.fields.weight == "class" and not op.loss_per_class:
        classes = shape[0] if len(shape) == 1 else shape[1]
        denominator = Fraction(int(np.prod(shape)) // max(classes, 1))  # positions
    else:
        denominator = Fraction(int(np.prod(shape)))  # elements
    return abs(Fraction(m) * denominator) > fmt.max_finite


def _row_sum_square_underflows(x: np.ndarray, fmt) -> bool:
    """A row of probabilities (along the class axis) whose exact sum S is positive and S * S is
    below the dtype's smallest normal: a division by S twice, rewritten as one by S * S (XLA's
    simplifier), divides by a subnormal or, flushed, by 0. The smallest normal is an even power
    of two in every dtype, so the bound on S is its exact square root."""
    bound = math.sqrt(float(fmt.min_normal))
    rows, _ = rows_of(x)
    with np.errstate(invalid="ignore"):
        small = (np.abs(rows) < bound).all(axis=1)  # only rows of small values can sum below the bound
    return any(0 < math.fsum(r.tolist()) < bound for r in rows[small])


def _row_sum(values: np.ndarray) -> Fraction | float:
    """The exact sum of a row of dtype values (float64 values, all exact): fsum, checked exactly
    when it rounds to 1."""
    total = math.fsum(values.tolist())
    if total == 1 and values.size <= 4096 and np.isfinite(values).all():
        return sum((Fraction(v) for v in values.tolist()), Fraction(0))
    return total


def _exact_inputs(spec: CaseSpec, dtype: str, arrays: dict) -> ExactInputs:
    """The case's inputs as the exact values of their dtype's bit patterns."""
    fmt = FORMATS[dtype]

    def exact(name):
        return _exact(arrays[f"{name}.{dtype}"], fmt) if f"{name}.{dtype}" in arrays else None

    target = arrays["target"] if spec.target_kind == "index" else exact("target")
    return ExactInputs(exact("input"), target, exact("weight"), exact("pos_weight"), spec.target_kind,
                       spec.ignore_index, spec.label_smoothing, spec.reduction)


FAST_PATH_MIN_ELEMENTS = 16  # written cases this large take the fast path; smaller ones the exact one
FAST_OPS = {"log_softmax": "logits", "cross_entropy": "logits", "nll_loss": "log_probs"}


def _written_bits(values: np.ndarray, fmt) -> np.ndarray:
    """resolve's bits of written values (Fractions, specials, edge names), vectorised: every
    Fraction's float64 value v = float(q) is its correct rounding, and rounding v again to fmt
    gives q's correct rounding unless v lies exactly halfway between two fmt values while q
    does not (double rounding); those few, and the values that are not Fractions, go through
    resolve one by one."""
    flat = values.reshape(-1).tolist()
    try:
        v = np.array(flat, dtype=np.float64)  # float(Fraction): one correct rounding
        redo = np.zeros(v.size, dtype=bool)
    except (TypeError, ValueError, OverflowError):  # specials, edge names, beyond float64
        redo = np.array([not isinstance(q, Fraction) or abs(q) > 2 ** 1024 for q in flat])
        v = np.array([0.0 if r else float(q) for q, r in zip(flat, redo)])
    bits = fast.round_to_format(v, fmt)
    if fmt.name != "float64":  # halfway between two fmt values: one more bit than fmt holds
        finer = FloatFormat("halfway", fmt.precision + 1, fmt.emax, 64)
        with np.errstate(over="ignore", invalid="ignore"):
            halfway = (fast._general_round(v, finer) == v) & (to_float64(bits, fmt) != v) & np.isfinite(v)
        redo |= halfway
    for i in np.flatnonzero(redo):
        bits[i] = resolve(flat[i], fmt)
    return bits.reshape(values.shape)


FastInputs = dict[str, tuple[np.ndarray, np.ndarray | None]]  # dtype: (input bits, class weight bits)


def _fast_inputs(spec: CaseSpec) -> FastInputs:
    """Per dtype, the input's and the class weights' bits (the golden arrays)."""
    stored = spec.input.dtype == np.float64
    return {d: (fast.round_to_format(spec.input, FORMATS[d]) if stored else _written_bits(spec.input, FORMATS[d]),
                None if spec.weight is None else _bits(spec.weight, FORMATS[d])) for d in spec.dtypes}


def _fast_path_applies(spec: CaseSpec) -> bool:
    """Whether build_case takes the fast path (_fast_path_inputs)."""
    return _fast_path_inputs(spec) is not None


def _fast_path_inputs(spec: CaseSpec, min_elements: int | None = None) -> FastInputs | None:
    """Cases the proven fast path decides (reference/fast.py: every output, variant and
    condition scale as the exact path gives them, bit for bit): log_softmax, class-index
    cross-entropy without label smoothing and nll_loss, under any reduction, class weights and
    ignore_index, of any shape with fewer than 2**23 classes, when the inputs and weights are
    finite in every dtype of the case, every target is a class or ignore_index, and a mean's
    denominator (the sum of w[y] over counted positions) is not 0; a stored array always, a
    written one from FAST_PATH_MIN_ELEMENTS on (below that the exact path costs tens of
    milliseconds a case, and it keeps the default suite, cases of at most 12 elements, on the
    exact reference the fast path is tested against, with the working precision its manifests
    record). Returns the case's input bits per dtype, or None. On such a case only the
    variant mean_by_count can separate from the canonical result: every other mechanism needs
    an infinity, a NaN, an empty mean or probability targets."""
    x = spec.input
    op = OPS[spec.op]
    if spec.op not in FAST_OPS or op.input_kind != FAST_OPS[spec.op] or x.size == 0 or x.ndim == 0:
        return None
    if x.dtype != np.float64 and x.size < (FAST_PATH_MIN_ELEMENTS if min_elements is None else min_elements):
        return None
    classes = x.shape[0 if x.ndim == 1 else 1]
    if classes >= fast.fast_float64.MAX_CLASSES:
        return None
    if op.has_targets:
        if spec.target_kind != "index" or spec.label_smoothing:
            return None
        t = np.asarray(spec.target).reshape(-1)
        counted = t != spec.ignore_index
        if not ((t[counted] >= 0) & (t[counted] < classes)).all():
            return None  # a domain error
    inputs = _fast_inputs(spec)
    for dtype, (bits, weight_bits) in inputs.items():
        fmt = FORMATS[dtype]
        if not np.isfinite(to_float64(bits, fmt)).all():
            return None
        if weight_bits is not None and not np.isfinite(to_float64(weight_bits, fmt)).all():
            return None
        if op.has_targets and spec.reduction == "mean":
            w = np.ones(classes) if weight_bits is None else to_float64(weight_bits, fmt)
            counts = np.bincount(t[counted], minlength=classes)
            if sum(Fraction(float(w[c])) * int(n) for c, n in enumerate(counts) if n) == 0:
                return None  # an empty mean, or weights summing to 0
    return inputs


def _build_fast(spec: CaseSpec, inputs: FastInputs | None = None) -> tuple[dict[str, np.ndarray], dict] | None:
    """The golden arrays and manifest entry of a case through reference/fast.py (inputs: the
    gate's _fast_path_inputs), or None when a reduced value needs the exact path
    (fast.Undecided)."""
    op = OPS[spec.op]
    reduction = spec.reduction if op.fields.reduction else "none"
    names = ["canonical"] + (["mean_by_count"] if op.has_targets and reduction == "mean"
                             and "mean_by_count" in op.variants_for(ExactInputs(None, target_kind="index")) else [])
    arrays: dict[str, np.ndarray] = {"target": spec.target.astype(np.int64)} if op.has_targets else {}
    variants: dict[str, list[str]] = {}
    fell_back = {}
    for dtype, (bits, weight_bits) in (inputs or _fast_inputs(spec)).items():
        fmt = FORMATS[dtype]
        arrays[f"input.{dtype}"] = bits
        x = to_float64(bits, fmt)
        if weight_bits is not None:
            arrays[f"weight.{dtype}"] = weight_bits
        try:
            if op.has_targets:
                evaluate = fast.cross_entropy_case if spec.op == "cross_entropy" else fast.nll_loss_case
                weight = None if weight_bits is None else to_float64(weight_bits, fmt)
                outs, fell_back[dtype] = evaluate(x, spec.target, weight, spec.ignore_index, reduction, fmt, names)
            else:
                out, fell_back[dtype] = fast.log_softmax_case(x, fmt)
                outs = {"canonical": out}
        except fast.Undecided:
            return None
        canonical = outs["canonical"]
        for name, out in outs.items():
            if name != "canonical":
                if np.array_equal(out.loss, canonical.loss) and np.array_equal(out.grad, canonical.grad):
                    continue  # the variant does not separate from canonical on this case
                variants.setdefault(dtype, []).append(name)
            for o in ("loss", "grad"):
                arrays[f"expected.{dtype}.{name}.{o}"] = getattr(out, o)
                arrays[f"cond.{dtype}.{name}.{o}"] = getattr(out, f"{o}_cond").astype(np.float64)
    entry = manifest_entry(
        spec.id, spec.op, source=Path(spec.source).name, dtypes=spec.dtypes, input_shape=spec.input.shape,
        params=case_params(spec.target_kind, spec.ignore_index, spec.label_smoothing, reduction,
                           spec.weight is not None, spec.pos_weight is not None),
        tags=sorted(spec.tags), features=features(spec), expect_error=None,
        precision_bits={d: 53 for d in spec.dtypes}, variants=variants, fallback_rows=fell_back)
    return arrays, entry


PATH_RECORDS = ("precision_bits", "fallback_rows")  # what each path records of its own work


def paths_agree(spec: CaseSpec, keep_exact: bool = False):
    """Whether the fast and the exact path give a case the same golden file (arrays and
    manifest entry, byte for byte), whatever its size; None where the fast path does not
    decide the case. `keep_exact`: (that, the exact path's build_case result)."""
    exact_arrays, exact_entry = exact = build_case(spec, fast_path=False)
    inputs = _fast_path_inputs(spec, min_elements=0)
    fast_built = _build_fast(spec, inputs) if inputs is not None else None
    if fast_built is None:
        agree = None
    else:
        fast_arrays, fast_entry = fast_built
        agree = npz_bytes(fast_arrays) == npz_bytes(exact_arrays) and \
            {k: v for k, v in fast_entry.items() if k not in PATH_RECORDS} == \
            {k: v for k, v in exact_entry.items() if k not in PATH_RECORDS}
    return (agree, exact) if keep_exact else agree


def _exact_values(values: np.ndarray) -> np.ndarray:
    """Stored float64 values as the exact values the reference takes."""
    specials = {np.inf: POS_INF, -np.inf: NEG_INF}
    out = np.empty(values.size, dtype=object)
    out[:] = [NAN if v != v else specials.get(v) or Fraction(v) for v in values.reshape(-1).tolist()]
    return out.reshape(values.shape)


def build_case(spec: CaseSpec, fast_path: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and manifest fields of one case, every dtype and semantics evaluated (`fast_path`
    False: the exact path, whatever the case)."""
    if fast_path and (inputs := _fast_path_inputs(spec)) is not None and (built := _build_fast(spec, inputs)) is not None:
        return built
    if spec.input.dtype == np.float64:
        spec = replace(spec, input=_exact_values(spec.input))  # the exact path, element by element
    arrays: dict[str, np.ndarray] = {}
    for dtype in spec.dtypes:
        fmt = FORMATS[dtype]
        arrays[f"input.{dtype}"] = _bits(spec.input, fmt)
        if spec.target_kind in ("probs", "binary"):
            arrays[f"target.{dtype}"] = _bits(spec.target, fmt)
        if spec.weight is not None:
            arrays[f"weight.{dtype}"] = _bits(spec.weight, fmt)
        if spec.pos_weight is not None:
            arrays[f"pos_weight.{dtype}"] = _bits(spec.pos_weight, fmt)
    if spec.target_kind == "index":
        arrays["target"] = spec.target.astype(np.int64)

    op = OPS[spec.op]
    expect_error = None
    precision: dict[str, int] = {}
    variants: dict[str, list[str]] = {}
    for dtype in spec.dtypes:
        fmt = FORMATS[dtype]
        inputs = _exact_inputs(spec, dtype, arrays)

        def finish(out: Outputs):
            return {o: rounding.round_array(fmt, getattr(out, o)) for o in OUTPUTS}, out

        def compute(sem):
            return lambda: op.evaluate(inputs, for_dtype(sem, fmt))

        try:
            (canonical, out), bits = rounding.with_precision(compute(CANONICAL), finish)
        except DomainError as e:
            expect_error = f"domain error: {e}"
            break
        precision[dtype] = bits
        for o in OUTPUTS:
            arrays[f"expected.{dtype}.canonical.{o}"] = canonical[o]
            arrays[f"cond.{dtype}.canonical.{o}"] = getattr(out, f"{o}_cond").astype(np.float64)
        admitted = op.variants_for(inputs)
        for name in (v for v in VARIANTS if v in admitted):
            (alt, alt_out), _ = rounding.with_precision(compute(VARIANTS[name]), finish)
            if all(alt[o].shape == canonical[o].shape and np.array_equal(alt[o], canonical[o]) for o in OUTPUTS):
                continue  # the variant does not separate from canonical on this case
            variants.setdefault(dtype, []).append(name)
            for o in OUTPUTS:
                arrays[f"expected.{dtype}.{name}.{o}"] = alt[o]
                arrays[f"cond.{dtype}.{name}.{o}"] = getattr(alt_out, f"{o}_cond").astype(np.float64)
    if expect_error:
        arrays = {k: v for k, v in arrays.items() if not k.startswith(("expected.", "cond."))}
        precision, variants = {}, {}

    entry = manifest_entry(
        spec.id, spec.op, source=Path(spec.source).name,  # the file name: stable across checkouts
        dtypes=spec.dtypes, input_shape=spec.input.shape,
        params=case_params(spec.target_kind, spec.ignore_index, spec.label_smoothing,
                           spec.reduction if op.fields.reduction else "none", spec.weight is not None,
                           spec.pos_weight is not None),
        tags=sorted(spec.tags), features=set(features(spec)) | ({"domain_error"} if expect_error else set()),
        expect_error=expect_error, precision_bits=precision, variants=variants)
    return arrays, entry


def case_params(target_kind, ignore_index: int, label_smoothing, reduction: str, weighted: bool,
                pos_weighted: bool) -> dict:
    """A case's parameters as the manifest records them (and expectations match them)."""
    return {"target_kind": target_kind, "ignore_index": ignore_index, "label_smoothing": float(label_smoothing),
            "reduction": reduction, "weighted": weighted, "pos_weighted": pos_weighted}


def manifest_entry(case_id: str, op: str, *, source: str, dtypes, input_shape, params: dict, tags, features,
                   expect_error: str | None, precision_bits: dict, variants: dict, **extra) -> dict:
    """One case's manifest entry: the one schema every suite's writer uses (docs/cases.md)."""
    return {"id": case_id, "op": op, "source": source, "dtypes": list(dtypes), "input_shape": list(input_shape),
            "params": params, "tags": list(tags), "features": sorted(features), "expect_error": expect_error,
            "precision_bits": precision_bits, "variants": variants, **extra}


def _listed_files(out_dir: Path) -> set[str]:
    """The case files a folder's manifest lists: the only files a writer may replace or delete."""
    try:
        return {e["file"] for e in json.loads((out_dir / "manifest.json").read_text())["cases"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def write_suite(built, out_dir: str | Path, suite: str, working_precision: dict, progress=None,
                force: bool = False) -> Path:
    """Write (arrays, manifest entry) pairs as a suite's .npz files and manifest, removing
    files of cases that are gone; returns the manifest path. A folder holding files that its
    manifest does not list is refused unless `force`; only listed files are ever deleted."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise GoldenFileError(f"{out_dir}: not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    listed = _listed_files(out_dir)
    foreign = sorted(p.name for p in out_dir.iterdir()
                     if p.name != "manifest.json" and p.name not in listed and not p.name.startswith("."))
    if foreign and not force:
        raise GoldenFileError(f"{out_dir}: holds {len(foreign)} files this suite's manifest does not list "
                              f"(e.g. {foreign[0]}); choose an empty folder, or --force to write beside them")
    entries = []
    for arrays, entry in built:
        data = npz_bytes(arrays)
        entry["file"] = f"{entry['id']}.npz"
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        atomic_write_bytes(out_dir / entry["file"], data)
        entries.append(entry)
        if progress:
            progress(entry["id"])
    keep = {e["file"] for e in entries}
    for stale in listed - keep:  # cases that are gone: only files the old manifest listed
        (out_dir / stale).unlink(missing_ok=True)
    by_feature: dict[str, int] = {}
    for e in entries:
        for f in e["features"]:
            by_feature[f] = by_feature.get(f, 0) + 1
    manifest = {
        "suite": suite,
        "counts": {"cases": len(entries), "by_feature": by_feature},
        "generator_version": GENERATOR_VERSION,
        "working_precision_bits": working_precision,
        "outputs": list(OUTPUTS),
        "cases": entries,
    }
    path = out_dir / "manifest.json"
    atomic_write_bytes(path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return path


def generate(specs: list[CaseSpec], out_dir: str | Path, suite: str, progress=None, force: bool = False) -> Path:
    """Evaluate case definitions with the arbitrary-precision reference and write the suite."""
    return write_suite((build_case(spec) for spec in specs), out_dir, suite,
                       {"start": rounding.START_BITS, "max": rounding.MAX_BITS}, progress, force)


# --- reading --------------------------------------------------------------------

@dataclass(frozen=True)
class Expected:
    bits: np.ndarray
    cond: np.ndarray


@dataclass(frozen=True)
class GoldenCase:
    suite_dir: Path
    entry: dict

    @property
    def id(self) -> str:
        return self.entry["id"]

    @property
    def op(self) -> str:
        return self.entry["op"]

    @property
    def params(self) -> dict:
        return self.entry["params"]

    @property
    def dtypes(self) -> list[str]:
        return self.entry["dtypes"]

    @property
    def expect_error(self) -> str | None:
        return self.entry["expect_error"]

    @property
    def path(self) -> Path:
        return self.suite_dir / self.entry["file"]

    def _checked_bytes(self) -> bytes:
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise GoldenFileError(f"{self.path}: case {self.id!r}: cannot read the golden file ({e.strerror})") from None
        if hashlib.sha256(data).hexdigest() != self.entry["sha256"]:
            raise GoldenFileError(f"{self.path}: case {self.id!r}: sha256 does not match the manifest")
        return data

    def verify(self) -> None:
        """Raise GoldenFileError unless the file is there and matches its checksum."""
        self._checked_bytes()

    def arrays(self) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(self._checked_bytes()), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def arrays_where(self, keep=None) -> dict[str, np.ndarray]:
        """The arrays whose names `keep` accepts (every one when None), equal to `arrays()`'s:
        a worker needs the inputs only, a runner the dtypes it runs. About ten times faster
        than np.load: the checksum already vouches for the bytes, so each member is inflated
        straight from its offset and the header npz_bytes writes is read by a pattern (any
        other goes through np.lib.format)."""
        data = self._checked_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [(i, i.filename.removesuffix(".npy")) for i in zf.infolist()]
        out = {}
        for info, name in members:
            if keep is not None and not keep(name):
                continue
            at = info.header_offset  # the local header: 30 bytes, then the name and extra field
            start = at + 30 + sum(int.from_bytes(data[i:i + 2], "little") for i in (at + 26, at + 28))
            raw = data[start:start + info.compress_size]
            raw = zlib.decompress(raw, -15) if info.compress_type == zipfile.ZIP_DEFLATED else raw
            size = int.from_bytes(raw[8:10], "little")
            header = r"\{'descr': '([<|][a-z]\d+)', 'fortran_order': False, 'shape': \(((?:\d+, ?)*\d*)\), \} *\n"
            found = raw[:8] == b"\x93NUMPY\x01\x00" and re.fullmatch(header, raw[10:10 + size].decode("latin1"))
            if not found or info.compress_type not in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    out[name] = np.lib.format.read_array(io.BytesIO(zf.read(info)), allow_pickle=False)
                continue
            shape = tuple(int(d) for d in found.group(2).split(",") if d.strip())
            out[name] = np.frombuffer(bytearray(raw[10 + size:]), dtype=found.group(1)).reshape(shape)
        return out

    def expected(self, arrays: dict, dtype: str) -> dict[str, dict[str, Expected]]:
        """{semantics name: {output: Expected}}, canonical first."""
        names = ["canonical"] + self.entry["variants"].get(dtype, [])
        return {n: {o: Expected(arrays[f"expected.{dtype}.{n}.{o}"], arrays[f"cond.{dtype}.{n}.{o}"].astype(np.float64))
                    for o in OUTPUTS} for n in names}


def load_suite(suite_dir: str | Path) -> list[GoldenCase]:
    suite_dir = Path(suite_dir)
    path = suite_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise GoldenFileError(f"{path}: cannot read the golden manifest ({e}); "
                              f"`xent generate --suite {suite_dir.name}` writes it") from None
    version = manifest.get("generator_version") if isinstance(manifest, dict) else None
    if version != GENERATOR_VERSION:
        raise GoldenFileError(f"{path}: generator version {version!r}, "
                              f"expected {GENERATOR_VERSION!r}; run `xent generate`")
    entries = manifest.get("cases") if isinstance(manifest, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and {"id", "file", "sha256"} <= set(e)
                                               for e in entries):
        raise GoldenFileError(f"{path}: field 'cases': not a list of case entries; run `xent generate`")
    return [GoldenCase(suite_dir, entry) for entry in entries]
