"""Case definitions: the TOML case-file format (docs/cases.md) and its validation.

Numbers keep their exact written value (TOML floats are read as text, never as Python
floats) and are rounded once, correctly, to each case dtype. Strings may hold C99 hex
floats or a named edge value that depends on the dtype (EDGE_VALUES).
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ml_dtypes  # noqa: F401  (registers the 'bfloat16' .npy descriptor with numpy)
import numpy as np
from flint import arb, ctx

from .formats import FORMATS, NEG_ZERO, FloatFormat, decode, parse_exact, round_fraction
from .ops import OPS

REDUCTIONS = ("none", "mean", "sum")
ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,200}")  # used with fullmatch: it names a file
MAX_DEPTH = 16  # nesting of arrays: rank at most 15
MAX_ELEMENTS = 10_000_000  # elements of one array
MAX_INDEX = 2**62  # class indices and ignore_index beyond this cannot be int64 labels


FIELDS = {"id", "op", "dtypes", "input", "shape", "target", "target_kind", "weight", "pos_weight",
          "ignore_index", "label_smoothing", "reduction", "tags"}


class CaseFileError(ValueError):
    """A malformed case file. The message names the file, the case and the field."""

    def __init__(self, path, case_id, field_name, problem):
        self.path, self.case_id, self.field, self.problem = str(path), case_id, field_name, problem
        where = f"case {case_id!r}" if case_id is not None else "file"
        super().__init__(f"{path}: {where}: field {field_name!r}: {problem}")


class TomlFloat(str):
    """A TOML float kept as its literal text (tomllib's parse_float hook)."""


def _log_max(fmt: FloatFormat) -> Fraction:
    saved = ctx.prec
    try:
        ctx.prec = 256
        mid = arb(str(float(fmt.max_finite))).log().mid()
        man, exp = (int(p) for p in mid.man_exp())
        return decode(fmt, round_fraction(fmt, Fraction(man) * Fraction(2) ** exp))
    finally:
        ctx.prec = saved


# Named edge values, each exactly representable in the dtype it is resolved for.
EDGE_VALUES = {
    "max": lambda f: f.max_finite,
    "min_normal": lambda f: f.min_normal,
    "min_subnormal": lambda f: f.min_subnormal,
    "max_subnormal": lambda f: f.min_normal - f.min_subnormal,
    "eps": lambda f: Fraction(2) ** (1 - f.precision),  # the spacing of values at 1
    "below_one": lambda f: 1 - Fraction(2) ** -f.precision,  # the largest value under 1
    "log_max": _log_max,  # ln(max) rounded to the dtype: exp() of it is near overflow
}


def resolve(value, fmt: FloatFormat) -> int:
    """Bit pattern of one written value (int, Fraction, special or edge name) in fmt."""
    if isinstance(value, str):  # NAN, POS_INF, NEG_INF or NEG_ZERO
        return round_fraction(fmt, value)
    if isinstance(value, tuple):  # ("edge", sign, name)
        _, sign, name = value
        return round_fraction(fmt, sign * EDGE_VALUES[name](fmt))
    return round_fraction(fmt, value)


def _parse_number(raw) -> Fraction | str | tuple:
    if isinstance(raw, bool):
        raise ValueError("booleans are not numbers here")
    if isinstance(raw, int):
        return Fraction(raw)
    if isinstance(raw, str):
        text = raw.strip()
        bare = text.lstrip("+-")
        if bare in EDGE_VALUES:
            return ("edge", -1 if text.startswith("-") else 1, bare)
        return parse_exact(text)
    raise ValueError(f"expected a number, got {type(raw).__name__} {raw!r}")


def _shape_of(raw, field_name, err, depth: int = 0) -> tuple[int, ...]:
    if not isinstance(raw, list):
        return ()
    if depth >= MAX_DEPTH:
        raise err(field_name, f"arrays nested more than {MAX_DEPTH} deep")
    if not raw:
        return (0,)
    shapes = {_shape_of(item, field_name, err, depth + 1) for item in raw}
    if len(shapes) != 1:
        raise err(field_name, "ragged nested list: every row must have the same length")
    shape = (len(raw),) + shapes.pop()
    if math.prod(shape) > MAX_ELEMENTS:
        raise err(field_name, f"more than {MAX_ELEMENTS} elements")
    return shape


def _is_bfloat16(dtype: np.dtype) -> bool:
    """numpy writes an ml_dtypes bfloat16 array with the descr '<V2': a 2-byte void, no fields."""
    return dtype == ml_dtypes.bfloat16 or (dtype.kind == "V" and dtype.itemsize == 2 and dtype.fields is None
                                           and dtype.subdtype is None)


def _stored_array(raw, field_name, path, err, kinds: str) -> np.ndarray | None:
    """An array stored in a .npy file beside the case file, `{ npy = "name.npy" }`, for inputs
    too large to write as text: float64 values (exact, whatever the file's float dtype, bfloat16
    included) or int64 integers, as `kinds` allows. None when the field is written out."""
    if not isinstance(raw, dict):
        return None
    if set(raw) != {"npy"} or not isinstance(raw["npy"], str):
        raise err(field_name, 'an array, or { npy = "file.npy" } naming a .npy file beside the case file')
    file = Path(path).parent / raw["npy"]
    try:
        with open(file, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            if len(shape) > MAX_DEPTH or math.prod(shape) > MAX_ELEMENTS:  # checked before allocating
                raise err(field_name, f"{file}: at most {MAX_DEPTH} dimensions and {MAX_ELEMENTS} elements")
        values = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise err(field_name, f"cannot read {file} as .npy: {str(e)[:120]}") from None
    if "f" in kinds and _is_bfloat16(values.dtype):
        # bfloat16 is the upper half of a float32: widening the bit patterns is exact (bytes as
        # numpy wrote them on a little-endian machine)
        values = (values.view("<u2").astype(np.uint32) << 16).view(np.float32)
    if values.dtype.kind not in kinds or values.ndim == 0:
        wanted = "floating-point values" if kinds == "f" else "integer class indices"
        raise err(field_name, f"{file}: {wanted} in at least one dimension, got {values.dtype} {values.shape}")
    if values.dtype.kind == "f":
        return values.astype(np.float64)
    if values.size and np.abs(values.astype(np.float64)).max() > MAX_INDEX:
        raise err(field_name, f"{file}: class indices must lie within +-{MAX_INDEX}")
    return values.astype(np.int64)


def _whole_number(v) -> int | None:
    """The class index a target value holds: an integer, or a float (a TOML float, a decimal string,
    a float .npy value) that is a whole number. None for anything else."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if v.is_integer() else None  # False for inf and nan
    try:
        value = _parse_number(v)
    except ValueError:
        return None
    if value == NEG_ZERO:
        return 0
    return int(value) if isinstance(value, Fraction) and value.denominator == 1 else None


def _class_indices(leaves) -> tuple[np.ndarray | None, str | None]:
    """int64 class indices from written values or a stored array, or None and what is wrong."""
    if isinstance(leaves, np.ndarray):  # a stored array: int64 (range checked on loading) or float64
        if leaves.dtype == np.int64:
            return leaves, None
        whole = np.isfinite(leaves) & (np.floor(leaves) == leaves)
        if not whole.all():
            return None, f"class indices must be whole numbers (got {leaves[~whole][0].item()})"
        too_big = leaves.size > 0 and np.abs(leaves).max() > MAX_INDEX
        values = leaves
    else:
        values = [_whole_number(v) for v in leaves]
        if None in values:
            return None, f"class indices must be whole numbers (got {str(leaves[values.index(None)])[:40]})"
        too_big = any(abs(v) > MAX_INDEX for v in values)
    if too_big:
        return None, f"class indices must lie within +-{MAX_INDEX}"
    return np.asarray(values).astype(np.int64), None


def _leaves(raw):
    if isinstance(raw, list):
        for item in raw:
            yield from _leaves(item)
    else:
        yield raw


@dataclass(frozen=True)
class CaseSpec:
    """One case as written: exact values, not yet rounded to a dtype."""

    id: str
    op: str
    input: np.ndarray  # object array of written values, canonical layout (class axis 1)
    dtypes: tuple[str, ...]
    target: np.ndarray | None = None  # int64 class indices, or object array of values
    target_kind: str | None = None  # "index" | "probs" | "binary"
    weight: np.ndarray | None = None  # object array: (C,) class weights, or elementwise
    pos_weight: np.ndarray | None = None  # object array of the last dim's length
    ignore_index: int = -100
    label_smoothing: Fraction = Fraction(0)  # the float64 value a framework receives
    reduction: str = "mean"
    tags: tuple[str, ...] = ()
    source: str = ""


def _obj_array(values: list, shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(shape)


def _parse_case(raw: dict, path: Path, index: int) -> CaseSpec:
    case_id = raw.get("id")

    def err(field_name, problem):
        return CaseFileError(path, case_id if isinstance(case_id, str) else f"#{index}", field_name, problem)

    if not isinstance(case_id, str) or not ID_PATTERN.fullmatch(case_id):
        raise err("id", "required; letters, digits, '-', '_' and '.' only")
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise err(unknown[0], f"unknown field (known: {', '.join(sorted(FIELDS))})")
    op = raw.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise err("op", f"required; one of {', '.join(OPS)}, got {op!r}")

    dtypes = raw.get("dtypes", list(FORMATS))
    if not isinstance(dtypes, list) or not dtypes or any(not isinstance(d, str) or d not in FORMATS for d in dtypes):
        raise err("dtypes", f"a non-empty list of {', '.join(FORMATS)}; got {dtypes!r}")

    def numbers(field_name, raw_value):
        try:
            return [_parse_number(v) for v in _leaves(raw_value)]
        except ValueError as e:
            raise err(field_name, str(e)) from None

    if "input" not in raw:
        raise err("input", "required")
    stored = _stored_array(raw["input"], "input", path, err, kinds="f")
    shape = stored.shape if stored is not None else _shape_of(raw["input"], "input", err)
    if "shape" in raw:
        declared = raw["shape"]
        if not isinstance(declared, list) or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in declared):
            raise err("shape", "a list of non-negative integers")
        if len(declared) > MAX_DEPTH or math.prod(declared) > MAX_ELEMENTS or max(declared, default=0) > MAX_ELEMENTS:
            raise err("shape", f"at most {MAX_DEPTH} dimensions and {MAX_ELEMENTS} elements")
        if shape != tuple(declared) and not (0 in shape and 0 in declared):
            raise err("shape", f"declared {tuple(declared)} but input has shape {shape}")
        shape = tuple(declared)
    if len(shape) == 0 or (0 in shape and "shape" not in raw):
        raise err("input", "needs at least one dimension (an empty input needs an explicit 'shape')")
    class_axis = 0 if len(shape) == 1 else 1
    n_classes = shape[class_axis]
    if n_classes == 0:
        raise err("input", "the class axis must not be empty")
    x = stored if stored is not None else _obj_array(numbers("input", raw["input"]), shape)

    fields = OPS[op].fields
    if fields.ndims and len(shape) not in fields.ndims:
        raise err("input", f"{op} takes inputs of rank {' or '.join(map(str, fields.ndims))}, got shape {shape}")
    takes = {"target": bool(fields.targets), "target_kind": bool(fields.targets), "weight": bool(fields.weight),
             "pos_weight": fields.pos_weight, "ignore_index": fields.ignore_index,
             "label_smoothing": fields.label_smoothing, "reduction": fields.reduction}
    for name, allowed in takes.items():
        if name in raw and not allowed:
            raise err(name, f"{op} takes no such parameter")

    target = target_kind = None
    if fields.targets:
        if "target" not in raw:
            raise err("target", f"required for {op}")
        stored_target = _stored_array(raw["target"], "target", path, err, kinds="iuf")
        if stored_target is not None:
            got, leaves = stored_target.shape, stored_target.reshape(-1)
            all_ints = leaves.dtype == np.int64 or leaves.size == 0
        else:  # depth and size checked before anything walks it
            got = _shape_of(raw["target"], "target", err)
            leaves = list(_leaves(raw["target"]))
            all_ints = all(isinstance(v, int) and not isinstance(v, bool) for v in leaves)
        default_kind = fields.targets[0] if len(fields.targets) == 1 else ("index" if all_ints else "probs")
        target_kind = raw.get("target_kind", default_kind)
        if target_kind not in fields.targets:
            raise err("target_kind", f"{op} takes {' or '.join(repr(k) for k in fields.targets)} targets")
        index_shape = shape[:class_axis] + shape[class_axis + 1:]
        target_shape = index_shape if target_kind == "index" else shape

        def fits(want):
            return got == want or (0 in got and 0 in want)

        # Floats are class indices only when target_kind = "index" says so. Floats in the shape of
        # class indices are most likely meant as such: say how to write them, or what is wrong.
        if not all_ints and "target_kind" not in raw and "index" in fields.targets and fits(index_shape):
            indices, problem = _class_indices(leaves)
            if indices is not None:  # all whole numbers
                if stored_target is None:
                    first = next(v for v in leaves if not isinstance(v, int))
                    first, fix = str(first)[:40], f"write {_whole_number(first)}"
                else:
                    first, fix = leaves[0].item(), f"store integers in {raw['target']['npy']}"
                raise err("target", f"class indices must be integers (got {first}); {fix}, "
                                    'or set target_kind = "index"')
            if target_kind == "probs":
                raise err("target", f"probs targets need shape {shape}, got {got}, and {problem}")
        if not fits(target_shape):
            raise err("target", f"{target_kind} targets need shape {target_shape}, got {got}")
        if target_kind == "index":
            indices, problem = _class_indices(leaves)
            if problem:
                raise err("target", problem)
            target = indices.reshape(target_shape)
        elif stored_target is not None:
            raise err("target", f"a .npy target holds class indices; write {target_kind} targets out")
        else:
            values = numbers("target", raw["target"])
            values = [Fraction(0) if v == NEG_ZERO else v for v in values]
            if any(isinstance(v, (str, tuple)) for v in values):
                raise err("target", "probability targets must be finite numbers (no edge names)")
            target = _obj_array(values, target_shape)

    def finite_array(name, allowed_shapes):
        got = _shape_of(raw[name], name, err)
        values = [Fraction(0) if v == NEG_ZERO else v for v in numbers(name, raw[name])]
        if got not in allowed_shapes:
            raise err(name, f"shape {got}; expected {' or '.join(str(a) for a in allowed_shapes)}")
        if any(isinstance(v, (str, tuple)) for v in values):
            raise err(name, "weights must be finite numbers (no edge names)")
        return _obj_array(values, got)

    weight = pos_weight = None
    if "weight" in raw:
        weight = finite_array("weight", [(n_classes,)] if fields.weight == "class" else [shape, shape[-1:]])
    if "pos_weight" in raw:
        pos_weight = finite_array("pos_weight", [shape[-1:]])

    ignore_index = raw.get("ignore_index", -100)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int) or abs(ignore_index) > MAX_INDEX:
        raise err("ignore_index", f"an integer within +-{MAX_INDEX}, got {str(ignore_index)[:40]!r}")
    smoothing_raw = raw.get("label_smoothing", TomlFloat("0.0"))
    try:
        smoothing = _parse_number(smoothing_raw)
        smoothing = Fraction(0) if smoothing == NEG_ZERO else smoothing
        if isinstance(smoothing, (str, tuple)):
            raise ValueError("a finite number")
    except ValueError as e:
        raise err("label_smoothing", str(e)) from None
    # frameworks receive a Python float: the contract uses that float64 value exactly
    smoothing = decode(FORMATS["float64"], round_fraction(FORMATS["float64"], smoothing))
    reduction = raw.get("reduction", "mean")
    if reduction not in REDUCTIONS:
        raise err("reduction", f"one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or any(not isinstance(t, str) for t in tags):
        raise err("tags", "a list of strings")

    return CaseSpec(id=case_id, op=op, input=x, dtypes=tuple(dtypes), target=target,
                    target_kind=target_kind, weight=weight, pos_weight=pos_weight, ignore_index=ignore_index,
                    label_smoothing=smoothing, reduction=reduction, tags=tuple(tags), source=str(path))


def load_case_file(path: str | Path) -> list[CaseSpec]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CaseFileError(path, None, "-", f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise CaseFileError(path, None, "-", f"not UTF-8 text (byte {e.start})") from None
    try:
        doc = tomllib.loads(text, parse_float=TomlFloat)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as e:  # ValueError: a 5000-digit integer
        raise CaseFileError(path, None, "-", f"not valid TOML: {str(e)[:200]}") from None
    extra = sorted(set(doc) - {"case"})
    if extra:
        raise CaseFileError(path, None, extra[0], "unknown top-level key; cases go in [[case]] tables")
    raw_cases = doc.get("case")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise CaseFileError(path, None, "case", "no [[case]] tables")
    for i, raw in enumerate(raw_cases):
        if not isinstance(raw, dict):
            raise CaseFileError(path, f"#{i}", "case", "each case is a [[case]] table")
    return parse_cases(raw_cases, path)


def parse_cases(raw_cases: list[dict], source) -> list[CaseSpec]:
    """Validate case tables (as tomllib gives them, floats as _Float text) from `source`."""
    cases = [_parse_case(raw, source, i) for i, raw in enumerate(raw_cases)]
    seen = set()
    for case in cases:
        if case.id in seen:
            raise CaseFileError(source, case.id, "id", "duplicate id")
        seen.add(case.id)
    return cases


def load_case_files(paths) -> list[CaseSpec]:
    """Every file is read and checked before any case is returned: nothing runs half-way."""
    cases, origin = [], {}
    for path in paths:
        for case in load_case_file(path):
            if case.id in origin:
                raise CaseFileError(path, case.id, "id", f"duplicate id (also in {origin[case.id]})")
            origin[case.id] = path
            cases.append(case)
    return cases


# -- writing: the inverse of the loader (parse(write(case)) == case; tests/test_casefile.py) --

NPY_FROM = 4096  # elements from which a writer stores an input beside the file as .npy


def number_text(value) -> str:
    """One written value as a TOML token that reads back as exactly it: an integer, a special,
    an edge name, a C99 hex float (dyadic values: every value of a binary format) or an exact
    decimal (a written decimal such as 0.1, whose denominator is 2^a 5^b)."""
    if isinstance(value, tuple):  # ("edge", sign, name)
        return f'"{"-" if value[1] < 0 else ""}{value[2]}"'
    if isinstance(value, str):  # NAN, POS_INF, NEG_INF, NEG_ZERO
        return {NEG_ZERO: '"-0x0p+0"', "nan": "nan", "+inf": "inf", "-inf": "-inf"}[value]
    if isinstance(value, float):  # a stored array's float64
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == 0 and math.copysign(1, value) < 0:
            return '"-0x0p+0"'
        value = Fraction(value)
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    if den & (den - 1) == 0:  # a power of two: exact in hex
        sign, mag = ("-" if value < 0 else ""), abs(value)
        exp = mag.numerator.bit_length() - den.bit_length()
        if Fraction(2) ** exp > mag:
            exp -= 1
        mant = mag / Fraction(2) ** exp  # in [1, 2)
        bits = 0
        while mant.denominator != 1:
            mant *= 16
            bits += 1
        whole, frac = divmod(mant.numerator, 16 ** bits)
        digits = f"{frac:0{bits}x}".rstrip("0")
        return f'"{sign}0x{whole}{"." + digits if digits else ""}p{exp:+d}"'
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:
        raise ValueError(f"{value} has no exact decimal or hex form")
    k = max(twos, fives)
    scaled = value * 10 ** k
    sign, digits = ("-" if scaled < 0 else ""), str(abs(scaled.numerator)).rjust(k + 1, "0")
    return f'"{sign}{digits[:-k]}.{digits[-k:]}"'


def _array_text(values: np.ndarray, token, indent: str = "") -> str:
    """Nested TOML arrays; a large one with each row on its own line."""
    if values.ndim == 0:
        return token(values.item() if values.dtype != object else values[()])
    if values.ndim == 1:
        return "[" + ", ".join(token(v.item() if isinstance(v, np.generic) else v) for v in values) + "]"
    if values.size <= 40:
        return "[" + ", ".join(_array_text(row, token) for row in values) + "]"
    inner = indent + "  "
    return "[\n" + "".join(f"{inner}{_array_text(row, token, inner)},\n" for row in values) + indent + "]"


def _index_text(v) -> str:
    return str(int(v))


def case_text(spec: CaseSpec, npy_dir: Path | None = None, npy_from: int = NPY_FROM) -> str:
    """One [[case]] table: every field the case sets, each value exact. An input of `npy_from`
    elements or more goes to `<id>.input.npy` in npy_dir (float64, exact) when one is given."""
    lines = ["[[case]]", f'id = "{spec.id}"', f'op = "{spec.op}"',
             "dtypes = [" + ", ".join(f'"{d}"' for d in spec.dtypes) + "]"]
    if 0 in spec.input.shape:
        lines.append(f"shape = [{', '.join(map(str, spec.input.shape))}]")
    if spec.target is not None:
        lines.append(f'target_kind = "{spec.target_kind}"')
        token = _index_text if spec.target_kind == "index" else number_text
        lines.append(f"target = {_array_text(spec.target, token)}")
    if spec.weight is not None:
        lines.append(f"weight = {_array_text(spec.weight, number_text)}")
    if spec.pos_weight is not None:
        lines.append(f"pos_weight = {_array_text(spec.pos_weight, number_text)}")
    fields = OPS[spec.op].fields
    if fields.ignore_index and spec.ignore_index != -100:
        lines.append(f"ignore_index = {spec.ignore_index}")
    if fields.label_smoothing and spec.label_smoothing:
        lines.append(f"label_smoothing = {number_text(spec.label_smoothing)}")
    if fields.reduction:
        lines.append(f'reduction = "{spec.reduction}"')
    if spec.tags:
        lines.append("tags = [" + ", ".join(f'"{t}"' for t in spec.tags) + "]")
    if npy_dir is not None and spec.input.size >= npy_from:
        name = f"{spec.id}.input.npy"
        np.save(npy_dir / name, np.vectorize(_as_float64, otypes=[np.float64])(spec.input), allow_pickle=False)
        lines.append(f'input = {{ npy = "{name}" }}')
    else:
        lines.append(f"input = {_array_text(spec.input, number_text)}")
    return "\n".join(lines) + "\n"


def _as_float64(value) -> float:
    """A written value as float64, for a .npy beside the file (exact for values of a binary format)."""
    if isinstance(value, tuple):
        raise ValueError("an edge name has no float64 value of its own; write the case as text")
    if isinstance(value, str):
        return {NEG_ZERO: -0.0, "nan": math.nan, "+inf": math.inf, "-inf": -math.inf}[value]
    exact = float(value)
    if Fraction(exact) != Fraction(value):
        raise ValueError(f"{value} is not a float64 value; write the case as text")
    return exact


def _comment(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.splitlines())


def write_case_file(specs: list[CaseSpec], path: str | Path, header: str = "",
                    comments: dict[str, str] | None = None, npy_from: int | None = NPY_FROM) -> Path:
    """A case file of `specs` (docs/cases.md), `header` as its leading comments and `comments`
    (by case id) above each case; written atomically, inputs of `npy_from` elements or more
    beside it as .npy (None: all as text)."""
    from .golden import atomic_write_bytes  # golden imports this module
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    comments = comments or {}
    text = _comment(header) + "\n".join(_comment(comments.get(s.id, "")) + case_text(s, path.parent if npy_from else None, npy_from or 0)
                                      for s in specs)
    atomic_write_bytes(path, text.encode())
    return path


def same_case(a: CaseSpec, b: CaseSpec) -> bool:
    """Whether two cases are the same definition (values compared exactly; `source` aside)."""
    def same(x, y):
        if x is None or y is None:
            return x is None and y is None
        if x.shape != y.shape:
            return False
        return all(_same_value(p, q) for p, q in zip(x.reshape(-1).tolist(), y.reshape(-1).tolist()))

    return (a.id, a.op, a.dtypes, a.target_kind, a.ignore_index, a.label_smoothing, a.reduction, a.tags) == \
           (b.id, b.op, b.dtypes, b.target_kind, b.ignore_index, b.label_smoothing, b.reduction, b.tags) and \
        all(same(getattr(a, f), getattr(b, f)) for f in ("input", "target", "weight", "pos_weight"))


def _same_value(p, q) -> bool:
    if isinstance(p, float) or isinstance(q, float):  # a stored array against written values
        p, q = (_as_float64(v) if not isinstance(v, float) else v for v in (p, q))
        return (math.isnan(p) and math.isnan(q)) or (p == q and math.copysign(1, p) == math.copysign(1, q))
    return p == q and type(p) is type(q) if isinstance(p, (str, tuple)) or isinstance(q, (str, tuple)) else p == q
