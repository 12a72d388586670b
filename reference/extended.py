"""Extended reals for the reference: a finite value is an arb ball (a rigorous enclosure),
a special is one of the strings NAN, POS_INF, NEG_INF.

Only the operations the loss formulas need are here, each with IEEE special-value rules,
except `scale`, which implements the contract's rule (docs/semantics.md) that an exactly-zero coefficient
contributes exactly zero (0 * inf = 0).
"""
from __future__ import annotations

from fractions import Fraction

from flint import arb, fmpq

from .formats import NAN, NEG_INF, POS_INF



class PrecisionTooLow(Exception):
    """The enclosure is too wide to decide a sign or a rounding: retry at higher precision."""


def exact(q: Fraction | int) -> arb:
    """arb enclosing the rational q (exact when q is dyadic and fits the working precision)."""
    if type(q) is not Fraction:  # Fraction(q) of a Fraction costs a microsecond, millions of times
        q = Fraction(q)
    return arb(fmpq(q.numerator, q.denominator))


def is_special(v) -> bool:
    return isinstance(v, str)


def is_nan(v) -> bool:
    return isinstance(v, str) and v == NAN


ZERO = arb(0)


def neg(v):
    if is_special(v):
        return {NAN: NAN, POS_INF: NEG_INF, NEG_INF: POS_INF}[v]
    return -v


def sign(v) -> int:
    """Sign of a value; raises PrecisionTooLow when the ball straddles zero."""
    if is_special(v):
        return {POS_INF: 1, NEG_INF: -1}[v]  # NaN has no sign: callers handle it first
    if v.is_zero():
        return 0
    if v > 0:
        return 1
    if v < 0:
        return -1
    raise PrecisionTooLow


def add(a, b):
    if is_special(a) or is_special(b):
        specials = {x for x in (a, b) if is_special(x)}
        if NAN in specials or specials == {POS_INF, NEG_INF}:
            return NAN
        return specials.pop()
    return a + b


def total(values, start=None):
    result = ZERO if start is None else start
    for v in values:
        result = add(result, v)
    return result


def scale(coef: Fraction, v, zero_times_inf_nan: bool = False):
    """coef * v for an exact coefficient. coef == 0 gives exactly 0 for any non-NaN v
    (the contract's 0 * inf = 0), or NaN for an infinite v under the IEEE variant."""
    if is_nan(v):
        return NAN
    if coef == 0:
        if is_special(v) and zero_times_inf_nan:
            return NAN
        return ZERO
    if is_special(v):
        return v if coef > 0 else neg(v)
    return exact(coef) * v


def divide(v, d: Fraction):
    """v / d for an exact divisor. x / 0 is NaN for x in {0, NaN}, else a signed infinity."""
    if is_nan(v):
        return NAN
    if d == 0:
        s = sign(v)
        if s == 0:
            return NAN
        return POS_INF if s > 0 else NEG_INF
    if is_special(v):
        return v if d > 0 else neg(v)
    return v / exact(d)


def to_float(v) -> float:
    """A float64 approximation, for tolerance scales and display only."""
    if is_special(v):
        return {NAN: float("nan"), POS_INF: float("inf"), NEG_INF: float("-inf")}[v]
    return float(v.mid())
