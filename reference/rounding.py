"""Correct rounding of enclosures to a format, with Ziv's retry at higher precision.

An output is correctly rounded when both ends of its arb enclosure round to the same bit
pattern: the exact value lies between them, and rounding is monotonic, so it rounds
there too. When they differ, the whole evaluation is repeated at twice the precision.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Callable, TypeVar

import numpy as np
from flint import ctx

from . import extended as ex
from .formats import FloatFormat, round_dyadic, special_bits

START_BITS = 128
MAX_BITS = 1 << 15

T = TypeVar("T")


class RoundingUndecided(RuntimeError):
    """The enclosure straddled a rounding boundary even at MAX_BITS."""


def round_value(fmt: FloatFormat, value) -> int:
    if ex.is_special(value):
        return special_bits(fmt, value)
    if isinstance(value, ex.Split):
        return round_split(fmt, value)
    if value.is_exact():
        mantissa, exponent = value.man_exp()
        return round_dyadic(fmt, int(mantissa), int(exponent))
    lo, hi = value.lower(), value.upper()
    if not (lo.is_finite() and hi.is_finite()):
        raise ex.PrecisionTooLow
    (lo_m, lo_e), (hi_m, hi_e) = lo.man_exp(), hi.man_exp()
    lo_bits = round_dyadic(fmt, int(lo_m), int(lo_e))
    hi_bits = round_dyadic(fmt, int(hi_m), int(hi_e))
    if lo_bits == hi_bits:
        return lo_bits
    if lo_bits & ~fmt.sign_bit == 0 and hi_bits & ~fmt.sign_bit == 0:
        return 0  # both ends round to a zero: the sign of zero is not part of the contract
    raise ex.PrecisionTooLow


def round_split(fmt: FloatFormat, value: ex.Split) -> int:
    """Round main + rest. Where the ball cannot decide (the sum lies on, or astronomically near,
    a rounding boundary), a dyadic main decides with the sign of rest: if 0 < |rest| < delta,
    where delta is far below the spacing of the format's boundaries (midpoints and
    representable values) around main, main + rest rounds as main + sign(rest) delta does:
    no boundary lies strictly between them, and rounding is monotonic."""
    try:
        return round_value(fmt, value.ball())
    except ex.PrecisionTooLow:
        pass
    main, rest = value.main, value.rest
    if main.denominator & (main.denominator - 1):  # not dyadic: not on a boundary, and more precision decides
        raise ex.PrecisionTooLow
    mantissa, exponent = main.numerator, 1 - main.denominator.bit_length()
    if rest.is_zero():
        return round_dyadic(fmt, mantissa, exponent)
    top = exponent + abs(mantissa).bit_length()  # 2**(top-1) <= |main| < 2**top
    # boundaries near main are at least half a quantum of the binade below apart; delta is
    # 1/8 of that, and a step finer than main's own last bit
    delta_exp = min(max(top - 2, fmt.emin) - fmt.frac_bits - 4, exponent - 1)
    if not abs(rest) < ex.exact(Fraction(2) ** delta_exp):
        raise ex.PrecisionTooLow  # rest is not yet known to lie within delta
    if rest > 0:
        direction = 1
    elif rest < 0:
        direction = -1
    else:
        raise ex.PrecisionTooLow  # rest's sign is not yet known
    shift = exponent - delta_exp  # >= 1: main and delta on one integer grid
    return round_dyadic(fmt, (mantissa << shift) + direction, delta_exp)


def round_array(fmt: FloatFormat, values: np.ndarray) -> np.ndarray:
    flat = [round_value(fmt, v) for v in values.reshape(-1)]
    return np.array(flat, dtype=fmt.storage).reshape(values.shape)


def with_precision(compute: Callable[[], T], finish: Callable[[T], object],
                   start_bits: int = START_BITS, max_bits: int = MAX_BITS):
    """Run compute() then finish() at increasing working precision until neither raises
    PrecisionTooLow. Returns (finish's result, the precision that decided it)."""
    bits = start_bits
    saved = ctx.prec
    try:
        while True:
            ctx.prec = bits
            try:
                return finish(compute()), bits
            except ex.PrecisionTooLow:
                if bits >= max_bits:
                    raise RoundingUndecided(f"undecided at {bits} bits") from None
                bits *= 2
    finally:
        ctx.prec = saved
