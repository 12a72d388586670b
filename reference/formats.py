"""IEEE-style binary formats and correct rounding, in exact integer arithmetic.

Everything here works on exact rationals (``fractions.Fraction``) and bit patterns
(Python ints). Nothing rounds through a hardware float, so rounding to float16 or
bfloat16 is a single, correct round-to-nearest-even from the exact value.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from fractions import Fraction

import numpy as np

NAN = "nan"
POS_INF = "+inf"
NEG_INF = "-inf"
NEG_ZERO = "-0"  # only as a written input: exact values do not carry the sign of zero
SPECIALS = (NAN, POS_INF, NEG_INF)


@dataclass(frozen=True)
class FloatFormat:
    name: str
    precision: int  # significand bits, the implicit bit included
    emax: int
    bits: int

    @cached_property  # read millions of times by the reference's rounding
    def emin(self) -> int:
        return 1 - self.emax

    @cached_property  # read millions of times by the reference's rounding
    def frac_bits(self) -> int:
        return self.precision - 1

    @cached_property  # read millions of times by the reference's rounding
    def exp_mask(self) -> int:
        return (1 << (self.bits - self.precision)) - 1

    @cached_property  # read millions of times by the reference's rounding
    def sign_bit(self) -> int:
        return 1 << (self.bits - 1)

    @property
    def unit_roundoff(self) -> Fraction:
        return Fraction(1, 1 << self.precision)

    @property
    def storage(self) -> str:
        """numpy unsigned dtype that holds a bit pattern of this format."""
        return f"uint{self.bits}"

    @property
    def max_finite(self) -> Fraction:
        return Fraction((1 << self.precision) - 1) * Fraction(2) ** (self.emax - self.precision + 1)

    @property
    def min_normal(self) -> Fraction:
        return Fraction(2) ** self.emin

    @property
    def min_subnormal(self) -> Fraction:
        return Fraction(2) ** (self.emin - self.precision + 1)


FORMATS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        FloatFormat("float64", 53, 1023, 64),
        FloatFormat("float32", 24, 127, 32),
        FloatFormat("float16", 11, 15, 16),
        FloatFormat("bfloat16", 8, 127, 16),
    )
}


def special_bits(fmt: FloatFormat, special: str) -> int:
    inf = fmt.exp_mask << fmt.frac_bits
    if special == POS_INF:
        return inf
    if special == NEG_INF:
        return fmt.sign_bit | inf
    if special == NAN:
        return inf | (1 << (fmt.frac_bits - 1))  # the canonical quiet NaN
    if special == NEG_ZERO:
        return fmt.sign_bit
    raise ValueError(special)


def decode(fmt: FloatFormat, bits: int) -> Fraction | str:
    """Exact value of a bit pattern: a Fraction, or one of SPECIALS (-0 decodes as 0)."""
    sign = -1 if bits & fmt.sign_bit else 1
    biased = (bits >> fmt.frac_bits) & fmt.exp_mask
    frac = bits & ((1 << fmt.frac_bits) - 1)
    if biased == fmt.exp_mask:
        if frac:
            return NAN
        return POS_INF if sign > 0 else NEG_INF
    if biased == 0:
        magnitude = Fraction(frac) * Fraction(2) ** (fmt.emin - fmt.frac_bits)
    else:
        magnitude = Fraction(frac | (1 << fmt.frac_bits)) * Fraction(2) ** (biased - fmt.emax - fmt.frac_bits)
    return sign * magnitude


def _round_half_even(num: int, den: int) -> int:
    """round(num / den) with ties to even, for den > 0."""
    q, r = divmod(num, den)
    twice = 2 * r
    if twice > den or (twice == den and q & 1):
        q += 1
    return q


def round_fraction(fmt: FloatFormat, value: Fraction | int | str) -> int:
    """Bit pattern of `value` correctly rounded (to nearest, ties to even) into `fmt`;
    a special (or NEG_ZERO) gives its own pattern."""
    if isinstance(value, str):
        return special_bits(fmt, value)
    value = Fraction(value)
    if value == 0:
        return 0
    sign = fmt.sign_bit if value < 0 else 0
    num, den = abs(value.numerator), value.denominator
    # e = floor(log2(num/den)), from bit lengths and one correction step
    e = num.bit_length() - den.bit_length()
    if (num << max(0, -e)) < (den << max(0, e)):
        e -= 1
    quantum_exp = max(e, fmt.emin) - fmt.frac_bits  # the spacing of values near |value|
    if quantum_exp >= 0:
        m = _round_half_even(num, den << quantum_exp)
    else:
        m = _round_half_even(num << -quantum_exp, den)
    if m >> fmt.precision:  # rounding carried into the next binade
        m >>= 1
        quantum_exp += 1
    if m >> fmt.frac_bits:  # normal
        exponent = quantum_exp + fmt.frac_bits
        if exponent > fmt.emax:
            return sign | special_bits(fmt, POS_INF)
        return sign | ((exponent + fmt.emax) << fmt.frac_bits) | (m ^ (1 << fmt.frac_bits))
    return sign | m  # subnormal or zero


def round_dyadic(fmt: FloatFormat, mantissa: int, exponent: int) -> int:
    """round_fraction(mantissa * 2**exponent) in integer shifts alone (the reference rounds
    millions of enclosure ends; Fractions cost most of that), and without building huge ints
    for values far outside the format's range (an enclosure can carry exponents like -10**300)."""
    if mantissa == 0:
        return 0
    sign = fmt.sign_bit if mantissa < 0 else 0
    magnitude = abs(mantissa)
    top = exponent + magnitude.bit_length()  # 2**(top-1) <= |value| < 2**top
    if top < fmt.emin - fmt.frac_bits - 2:  # below half the smallest subnormal
        return sign
    if top > fmt.emax + 2:
        return sign | special_bits(fmt, POS_INF)
    quantum_exp = max(top - 1, fmt.emin) - fmt.frac_bits  # the spacing of values near |value|
    shift = quantum_exp - exponent
    if shift <= 0:
        m = magnitude << -shift  # exact: a multiple of the quantum
    else:  # round magnitude / 2**shift to nearest, ties to even
        m, rest = magnitude >> shift, magnitude & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rest > half or (rest == half and m & 1):
            m += 1
    if m >> fmt.precision:  # rounding carried into the next binade
        m >>= 1
        quantum_exp += 1
    if m >> fmt.frac_bits:  # normal
        biased = quantum_exp + fmt.frac_bits + fmt.emax
        if biased >= fmt.exp_mask:
            return sign | special_bits(fmt, POS_INF)
        return sign | (biased << fmt.frac_bits) | (m ^ (1 << fmt.frac_bits))
    return sign | m  # subnormal or zero


def ulp(fmt: FloatFormat, value: Fraction) -> Fraction:
    """Spacing of `fmt` values at |value| (the subnormal spacing below the normal range)."""
    value = abs(Fraction(value))
    if value == 0:
        return fmt.min_subnormal
    e = math.floor(math.log2(value)) if value < 2**1000 else value.numerator.bit_length() - value.denominator.bit_length()
    # guard the float log2 estimate with exact checks
    while Fraction(2) ** e > value:
        e -= 1
    while Fraction(2) ** (e + 1) <= value:
        e += 1
    return Fraction(2) ** (max(e, fmt.emin) - fmt.frac_bits)


_HEX = re.compile(r"^([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?[pP]([+-]?\d+)$")
_SPECIAL_WORDS = {"nan": NAN, "+nan": NAN, "-nan": NAN, "inf": POS_INF, "+inf": POS_INF,
                  "-inf": NEG_INF, "infinity": POS_INF, "+infinity": POS_INF, "-infinity": NEG_INF}


_DECIMAL = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$")
MAX_LITERAL = 10_000  # characters of one written number
# magnitudes beyond these round to +-inf, or to 0, in every format here (float64 overflows at
# 2**1024 ~ 1.8e308 and its smallest subnormal is 2**-1074 ~ 4.9e-324): decided without exact
# arithmetic, so a written 1e999999999 costs nothing
_TOO_LARGE_10, _TOO_SMALL_10 = 330, -340
_TOO_LARGE_2, _TOO_SMALL_2 = 1100, -1200


def _beyond(sign: str, magnitude_exponent: int, large: int, small: int):
    """+-inf or (signed) 0 when the magnitude's exponent is beyond every format, else None."""
    if magnitude_exponent > large:
        return NEG_INF if sign == "-" else POS_INF
    if magnitude_exponent < small:
        return NEG_ZERO if sign == "-" else Fraction(0)
    return None


def _exponent(digits: str | None) -> int:
    if not digits:
        return 0
    body = digits.lstrip("+-")
    if len(body.lstrip("0")) > 12:  # far beyond any format either way: its sign decides
        return (-1 if digits.startswith("-") else 1) * 10**12
    return int(digits)


def parse_exact(text: str) -> Fraction | str:
    """Exact value of a decimal (`1e-3`) or C99 hex (`0x1.8p-3`) literal, or a special."""
    if len(text) > MAX_LITERAL:
        raise ValueError(f"a number written with more than {MAX_LITERAL} characters")
    cleaned = text.strip().replace("_", "")
    special = _SPECIAL_WORDS.get(cleaned.lower())
    if special:
        return special
    match = _HEX.match(cleaned)
    if match:
        sign, whole, frac, exp = match.groups()
        frac = frac or ""
        if not whole and not frac:
            raise ValueError(f"not a number: {text!r}")
        mantissa = int(whole + frac, 16)
        if mantissa:
            decided = _beyond(sign, mantissa.bit_length() + _exponent(exp) - 4 * len(frac), _TOO_LARGE_2, _TOO_SMALL_2)
            if decided is not None:
                return decided
        e = _exponent(exp) - 4 * len(frac)
        if mantissa:  # an odd numerator over a power of two: Fraction need not reduce it
            zeros = (mantissa & -mantissa).bit_length() - 1
            mantissa, e = mantissa >> zeros, e + zeros
        value = Fraction(mantissa << e) if e >= 0 else Fraction(mantissa, 1 << -e)
        if sign == "-":
            return -value if value else NEG_ZERO
        return value
    match = _DECIMAL.match(cleaned)
    if not match or not (match.group(2) or match.group(3)):
        raise ValueError(f"not a number: {text[:60]!r}")
    sign, whole, frac, exp = match.groups()
    digits = (whole + (frac or "")).lstrip("0")
    if digits:
        leading = len((whole or "").lstrip("0")) or -(len(frac or "") - len((frac or "").lstrip("0")))
        decided = _beyond(sign, _exponent(exp) + leading, _TOO_LARGE_10, _TOO_SMALL_10)
        if decided is not None:
            return decided
    try:
        value = Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"not a number: {text[:60]!r}") from None
    return NEG_ZERO if value == 0 and cleaned.startswith("-") else value


def to_float64(bits: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Exact float64 values of bit patterns of fmt (every format here is a subset of float64)."""
    if fmt.name == "bfloat16":
        return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    view = {"float64": np.float64, "float32": np.float32, "float16": np.float16}[fmt.name]
    return bits.view(view).astype(np.float64)
