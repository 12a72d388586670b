"""The exact fallback both fast paths share: correctly rounded outputs of a few rows or
elements from exact rationals, with Ziv's retry (reference/rounding.py), and the float64
error-analysis constants their bounds are written in."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from . import extended as ex, rounding
from .losses import log_softmax_parts
from .formats import FloatFormat
from .ops.cross_entropy import cross_entropy
from .ops.log_softmax import log_softmax

U = 2.0 ** -53  # unit roundoff of float64
TINY = 2.0 ** -1074  # the smallest float64 subnormal
SAFETY = 1.0 + 2.0 ** -20  # covers second-order terms while relative errors stay below 2**-30


def enclosing_width(value: np.ndarray, err, unit: float, tiny) -> np.ndarray:
    """A half-width w such that value -/+ w, each rounded in value's own format, lie outside
    [value - err, value + err]: w = (err + 2 unit |value| + 2 tiny)(1 + 16 unit) covers the
    rounding of w itself and of the subtraction and addition, each within unit |.| + tiny / 2
    (unit: the format's unit roundoff, tiny: its smallest subnormal)."""
    width = np.abs(value) * (2 * unit)  # exact: unit is a power of two
    width += err
    width += 2 * tiny
    width *= value.dtype.type(1) + 16 * unit  # 1 + 16 unit, exact in value's format
    return width


def exact_rows(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, dtype=object)
    out[...] = [[Fraction(float(v)) for v in row] for row in x]
    return out


def slow_outputs(compute, fmt):
    """The arbitrary-precision path for a few rows: (loss bits, grad bits)."""
    (bits, _), _ = rounding.with_precision(
        compute, lambda o: ({k: rounding.round_array(fmt, getattr(o, k)) for k in ("loss", "grad")}, o))
    return bits["loss"], bits["grad"]


def slow_elements(row: np.ndarray, columns: np.ndarray, fmt: FloatFormat, value_of) -> list[int]:
    """Correctly rounded bits of a few elements of one finite row: the row's log-sum-exp in
    arb once, then only those elements. value_of(lp_c, softmax_c, c) gives the element."""
    return slow_values(row, [(int(c), value_of, fmt) for c in columns])


def slow_values(row: np.ndarray, items) -> list[int]:
    """Correctly rounded bits of several values of one finite row, with one log-sum-exp in arb
    per working precision (Ziv's retry): items are (c, value_of, fmt), value_of(lp_c,
    softmax_c, c) the exact value (arb or ex.Split) to round to fmt."""
    top = Fraction(float(row.max()))
    differences = [Fraction(float(v)) - top for v in row]  # exact; made arb at each precision

    def compute():
        columns = [c for c, _, _ in items]  # only these: a row can hold 262,144 classes
        lp, sm, _ = log_softmax_parts(differences, columns)
        return [(value_of(lp_c, sm_c, c), fmt) for lp_c, sm_c, (c, value_of, fmt) in zip(lp, sm, items)]

    bits, _ = rounding.with_precision(compute, lambda vals: [rounding.round_value(fmt, v) for v, fmt in vals])
    return bits


def log_softmax_rows(x: np.ndarray, fmt: FloatFormat):
    """Exact (loss bits, grad bits) of log_softmax of finite float64 rows."""
    return slow_outputs(lambda: log_softmax(exact_rows(x)), fmt)


def cross_entropy_rows(x: np.ndarray, target: np.ndarray, reduction: str, fmt: FloatFormat):
    """Exact (loss bits, grad bits) of class-index cross-entropy of finite float64 rows."""
    return slow_outputs(lambda: cross_entropy(exact_rows(x), target, target_kind="index", reduction=reduction), fmt)
