"""What the search draws: cases of every op, as Hypothesis strategies over the case format.

An `Example` is a case's fields as arrays (float64 holds every value of float32 and bfloat16
exactly) and the regime it was drawn from. Values are exact in the example's dtype: drawn as
a float (or, for the `bits` regime, as a bit pattern: Hypothesis has no bfloat16 width) and
rounded to the dtype once, here, so the written case means the same in every reader.

Shapes come from a short menu (N in 1, 2, 4; C in 2, 3, 7; a K-dim axis of 2): a compiled
mode compiles a graph per shape and parameters, so a small menu lets the search reuse its
graphs and spend its time on values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from hypothesis import strategies as st

from reference.casefile import CaseSpec, parse_cases
from reference.fast import round_to_format
from reference.formats import FORMATS, to_float64
from reference.ops import OPS

BATCHES, CLASSES, SPATIAL = (1, 2, 4), (2, 3, 7), 2
SMOOTHING = (0.0, 0.1, 2.0 ** -20, 0.5, 1 - 2.0 ** -10, 1.0)  # near 0 and near 1, both ends
WEIGHTS = (0.0, 2.0 ** -24, 0.5, 1.0, 3.0, 2.0 ** 20)  # zero, tiny, ordinary, huge
IGNORE_INDICES = (-100, -1, 0)

# regimes by what the input holds: the value classes where implementations part ways
REGIMES = {
    "logits": ("ordinary", "dominant", "ties", "offset", "bits", "special"),
    "log_probs": ("ordinary", "dominant", "ties", "bits", "special"),
    "probs": ("ordinary", "tiny", "near_one", "bits", "special"),
}


@dataclass(frozen=True)
class Example:
    """One drawn case: its fields (canonical layout, class axis 1) and how it was drawn."""

    op: str
    dtype: str
    regime: str
    input: np.ndarray  # float64, exact in dtype
    target: np.ndarray | None = None  # int64 class indices, or float64 values
    target_kind: str | None = None
    weight: np.ndarray | None = None
    pos_weight: np.ndarray | None = None
    ignore_index: int = -100
    label_smoothing: float = 0.0
    reduction: str = "mean"
    tags: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        return int(self.input.size)

    def table(self, case_id: str) -> dict:
        """The case as a table of the case format (values as exact hex text)."""
        fields = OPS[self.op].fields
        t = {"id": case_id, "op": self.op, "dtypes": [self.dtype], "input": _text(self.input)}
        if 0 in self.input.shape:
            t["shape"] = list(self.input.shape)
        if self.target is not None:
            t["target_kind"] = self.target_kind
            t["target"] = self.target.tolist() if self.target_kind == "index" else _text(self.target)
        if self.weight is not None:
            t["weight"] = _text(self.weight)
        if self.pos_weight is not None:
            t["pos_weight"] = _text(self.pos_weight)
        if fields.ignore_index:
            t["ignore_index"] = int(self.ignore_index)
        if fields.label_smoothing:
            t["label_smoothing"] = float(self.label_smoothing).hex()
        if fields.reduction:
            t["reduction"] = self.reduction
        if self.tags:
            t["tags"] = list(self.tags)
        return t

    def spec(self, case_id: str) -> CaseSpec:
        """The case, checked by the same loader as a user's file."""
        return parse_cases([self.table(case_id)], "xent discover")[0]


def _hex(v: float) -> str:
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else float(v).hex()


def _text(a: np.ndarray):
    return np.vectorize(_hex, otypes=[object])(a).tolist() if a.ndim else _hex(float(a))


def in_dtype(values, dtype: str) -> np.ndarray:
    """Values correctly rounded to the dtype (to nearest, ties to even, once), as float64 again."""
    fmt = FORMATS[dtype]
    return to_float64(round_to_format(np.asarray(values, dtype=np.float64), fmt), fmt)


def _from_bits(bits: int, dtype: str) -> float:
    fmt = FORMATS[dtype]
    with np.errstate(invalid="ignore"):  # a NaN pattern
        return float(to_float64(np.array([bits], dtype=fmt.storage), fmt)[0])


def ulp_step(v: float, dtype: str, steps: int) -> float:
    """v moved by `steps` representable values of the dtype."""
    fmt = FORMATS[dtype]
    bits = int(round_to_format(np.array([v]), fmt)[0])
    return _from_bits(min(max(bits + steps if v >= 0 else bits - steps, 0), 2 ** fmt.bits - 1), dtype)


@st.composite
def values(draw, n: int, dtype: str, regime: str, kind: str) -> np.ndarray:
    """n values of one regime for an input holding `kind` (logits, log_probs, probs)."""
    width = 64 if dtype == "float64" else 32
    if regime == "bits":  # every finite pattern alike: the whole dynamic range, subnormals included
        raw = draw(st.lists(st.integers(0, 2 ** FORMATS[dtype].bits - 1).map(lambda b: _from_bits(b, dtype))
                            .filter(math.isfinite), min_size=n, max_size=n))
        v = np.array(raw)
        if kind == "probs":
            v = np.minimum(np.abs(v), 1.0)
        elif kind == "log_probs":
            v = -np.abs(v)
        return in_dtype(v, dtype)
    if kind == "probs":
        if regime == "tiny":
            ordinary = st.one_of(st.just(0.0), st.floats(0, 2.0 ** -120, width=width), st.floats(0, 2.0 ** -20, width=width))
        elif regime == "near_one":
            ordinary = st.one_of(st.just(1.0), st.integers(1, 64).map(lambda k: ulp_step(1.0, dtype, -k)))
        else:
            ordinary = st.floats(0, 1, width=width)
        specials = st.sampled_from([0.0, 1.0, math.nan, 2.0 ** -126])
    else:
        ordinary = st.floats(-8, 8, width=width)
        specials = st.sampled_from([math.inf, -math.inf, math.nan, 3.0e38, -3.0e38])
    raw = np.array(draw(st.lists(ordinary, min_size=n, max_size=n)), dtype=np.float64)
    if regime == "special":
        k = draw(st.integers(1, max(1, n // 2)))
        for i in draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k, unique=True)):
            raw[i] = draw(specials)
    if regime == "offset":
        raw = raw + 2.0 ** draw(st.integers(8, 100)) * draw(st.sampled_from([1, -1]))
    if regime == "ties":  # equal values and neighbours one or two ulps apart
        base = float(in_dtype([raw[0]], dtype)[0])
        raw = np.array([ulp_step(base, dtype, s) for s in draw(st.lists(st.sampled_from([0, 0, 1, -1, 2]),
                                                                          min_size=n, max_size=n))])
    if kind == "log_probs":
        raw = -np.abs(raw)
    return in_dtype(raw, dtype)


def _dominant(draw, x: np.ndarray, dtype: str, kind: str) -> np.ndarray:
    """One entry per position far above the others (a near-certain class)."""
    rows = np.moveaxis(x, 1, -1).copy()
    flat = rows.reshape(-1, rows.shape[-1])
    big = draw(st.floats(16, 8192, width=32)) if kind == "logits" else 0.0
    for r in flat:
        r[draw(st.integers(0, len(r) - 1))] = big if kind == "logits" else -draw(st.floats(0, 2.0 ** -20, width=32))
    return in_dtype(np.moveaxis(flat.reshape(rows.shape), -1, 1), dtype)


@st.composite
def examples(draw, op_name: str, dtypes: tuple[str, ...]) -> Example:
    """Cases of one op, in one of `dtypes`, over every field it takes."""
    op = OPS[op_name]
    f = op.fields
    dtype = draw(st.sampled_from(dtypes))
    kind = op.input_kind
    regime = draw(st.sampled_from(REGIMES[kind]))
    rank = draw(st.sampled_from(f.ndims or (2, 2, 2, 1, 3)))
    n, c = draw(st.sampled_from(BATCHES)), draw(st.sampled_from(CLASSES))
    shape = (c,) if rank == 1 else (n, c) if rank == 2 else (n, c, SPATIAL)
    size = math.prod(shape)
    x = draw(values(size, dtype, regime, kind)).reshape(shape)
    if regime == "dominant" and rank > 1:
        x = _dominant(draw, x, dtype, kind)
    ex = Example(op_name, dtype, regime, x)
    if not f.targets:
        return ex
    target_kind = draw(st.sampled_from(f.targets))
    index_shape = shape[:1] if rank == 1 else (shape[0],) + shape[2:]
    index_shape = () if rank == 1 else index_shape
    updates: dict = {"target_kind": target_kind}
    if f.reduction:
        updates["reduction"] = draw(st.sampled_from(("none", "mean", "sum")))
    if target_kind == "index":
        ignore_index = draw(st.sampled_from(IGNORE_INDICES)) if f.ignore_index else -100
        positions = math.prod(index_shape)
        labels = draw(st.lists(st.integers(0, c - 1), min_size=positions, max_size=positions))
        if f.ignore_index:  # some positions ignored, now and then all of them
            for i in draw(st.lists(st.integers(0, max(positions - 1, 0)), max_size=positions, unique=True)):
                labels[i] = ignore_index
        updates.update(target=np.array(labels, dtype=np.int64).reshape(index_shape), ignore_index=ignore_index)
    elif target_kind == "probs":
        updates["target"] = _probability_rows(draw, shape, c, dtype)
    else:  # binary: hard labels, or soft ones (exact dyadic values in [0, 1])
        soft = draw(st.booleans())
        t = draw(st.lists(st.integers(0, 16) if soft else st.integers(0, 1), min_size=size, max_size=size))
        updates["target"] = np.array(t, dtype=np.float64).reshape(shape) / (16 if soft else 1)
    if f.weight and draw(st.integers(0, 2)) == 0:
        w_shape = (c,) if f.weight == "class" else shape[-1:]
        updates["weight"] = in_dtype(draw(st.lists(st.sampled_from(WEIGHTS), min_size=w_shape[0], max_size=w_shape[0])),
                                     dtype)
    if f.pos_weight and draw(st.integers(0, 2)) == 0:
        updates["pos_weight"] = in_dtype(draw(st.lists(st.sampled_from(WEIGHTS), min_size=shape[-1],
                                                       max_size=shape[-1])), dtype)
    if f.label_smoothing and draw(st.integers(0, 2)) == 0:
        updates["label_smoothing"] = draw(st.sampled_from(SMOOTHING))
    return replace(ex, **updates)


def _probability_rows(draw, shape, c: int, dtype: str) -> np.ndarray:
    """Rows of exact dyadic probabilities summing to 1 (cut points of 2^k), one-hot now and then."""
    positions = math.prod(shape) // c
    rows = []
    for _ in range(positions):
        k = draw(st.sampled_from((0, 3, 6)))
        cuts = sorted(draw(st.lists(st.integers(0, 2 ** k), min_size=c - 1, max_size=c - 1)))
        parts = np.diff([0, *cuts, 2 ** k]) / 2 ** k
        rows.append(parts)
    t = np.array(rows, dtype=np.float64)  # (positions, C)
    if len(shape) == 1:
        return t[0]
    t = t.reshape((shape[0],) + tuple(shape[2:]) + (c,))
    return in_dtype(np.moveaxis(t, -1, 1), dtype)
