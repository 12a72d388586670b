"""Extended reals for the reference: a finite value is an arb ball (a rigorous enclosure) or
a `Split` (an exact rational plus an arb remainder), a special is one of the strings NAN,
POS_INF, NEG_INF.

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


def _exact_rational(v) -> Fraction | None:
    """v as a Fraction where it is an exact number (int, Fraction, bool, exact arb), else None."""
    if type(v) is Fraction:
        return v
    if isinstance(v, int):
        return Fraction(v)
    if isinstance(v, arb) and v.is_exact():
        if v.is_zero():
            return _FRACTION_ZERO
        mantissa, exponent = (int(p) for p in v.man_exp())
        return Fraction(mantissa << exponent) if exponent >= 0 else Fraction(mantissa, 1 << -exponent)
    return None


_FRACTION_ZERO = Fraction(0)


class Split:
    """main + rest: an exact rational and an arb ball, kept apart through the loss's linear steps.

    Where a loss is an exact rational plus transcendental terms far below it (softplus(x) =
    x + log1p(exp(-x)) at x = 2**61, a log-sum-exp over logits 10**4 apart), the sum can sit
    exactly on a rounding midpoint: no precision decides the ball main + rest, but the
    exact main and the sign of rest do (reference/rounding.py). Sums, differences, and
    products with exact numbers keep the split; anything else falls back to the plain ball."""

    __slots__ = ("main", "rest")

    def __init__(self, main: Fraction, rest: arb):
        self.main, self.rest = main if type(main) is Fraction else Fraction(main), rest

    def ball(self) -> arb:
        return exact(self.main) + self.rest

    def __repr__(self) -> str:
        return f"Split({self.main}, {self.rest})"

    def __neg__(self):
        return Split(-self.main, -self.rest)

    def __add__(self, other):
        if isinstance(other, Split):  # (most mains are 0: skip the Fraction arithmetic)
            main = other.main if not self.main else self.main + other.main if other.main else self.main
            return Split(main, self.rest + other.rest)
        q = _exact_rational(other)
        if q is not None:
            return Split(self.main + q, self.rest)
        if isinstance(other, arb):
            return Split(self.main, self.rest + other)
        return NotImplemented

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        q = _exact_rational(other)
        if q is not None:
            return Split(self.main * q if self.main else self.main, times(self.rest, q))
        if isinstance(other, Split):  # (m + r)(m' + r') = m m' + (m r' + m' r + r r')
            return Split(self.main * other.main,
                         exact(self.main) * other.rest + exact(other.main) * self.rest + self.rest * other.rest)
        if isinstance(other, arb):
            return self.ball() * other
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, other):
        q = _exact_rational(other)
        if q is not None and q != 0:
            return Split(self.main / q, times(self.rest, 1 / q))
        if isinstance(other, (arb, Split)):
            return self.ball() / (other.ball() if isinstance(other, Split) else other)
        return NotImplemented

    def __rtruediv__(self, other):
        return other / self.ball()


def rational(q: Fraction) -> Split:
    """An exact rational as a value that stays exact through the linear steps: exact(1/7) is a
    rounded ball, and 1/7 - 1/7 of two such balls is never exactly 0; Split(1/7, 0) keeps it."""
    return Split(q, ZERO)


def times(v: arb, q: Fraction) -> arb:
    """v * q for a rational q: 1/3 as a ball is inexact, so an exact v times it never is;
    v * 1 / 3 stays exact wherever the product is dyadic (1023/4096 / 3 = 341/4096)."""
    if q.denominator & (q.denominator - 1):
        return v * exact(q.numerator) / exact(q.denominator)
    return v * exact(q)


def neg(v):
    if is_special(v):
        return {NAN: NAN, POS_INF: NEG_INF, NEG_INF: POS_INF}[v]
    return -v


def sign(v) -> int:
    """Sign of a value; raises PrecisionTooLow when the ball straddles zero."""
    if is_special(v):
        return {POS_INF: 1, NEG_INF: -1}[v]  # NaN has no sign: callers handle it first
    if isinstance(v, Split):
        try:
            return sign(v.ball())
        except PrecisionTooLow:
            if abs(v.rest) < exact(abs(v.main)):  # the remainder cannot reach zero
                return 1 if v.main > 0 else -1
            raise
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
    return v * coef if isinstance(v, Split) else times(v, coef)


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
    return v / d if isinstance(v, Split) else v / exact(d)


def to_float(v) -> float:
    """A float64 approximation, for tolerance scales and display only."""
    if is_special(v):
        return {NAN: float("nan"), POS_INF: float("inf"), NEG_INF: float("-inf")}[v]
    if isinstance(v, Split):
        v = v.ball()
    return float(v.mid())
