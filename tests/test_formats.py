"""Correct rounding, checked exhaustively on every float16 and bfloat16 bit pattern.

For each pair of adjacent finite values a < b of a format, with m = (a + b) / 2:
values just above a and just below b round to them, m rounds to whichever has an even
significand, and a and b round to themselves. That pins down round-to-nearest-even
everywhere. numpy's single float64 -> float16 rounding is an independent second oracle.
"""
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from reference.formats import (FORMATS, NAN, NEG_INF, POS_INF, decode, parse_exact, round_dyadic,
                               round_fraction, special_bits, ulp)

SMALL = ["float16", "bfloat16"]


def finite_ascending(fmt):
    """All non-negative finite values of a format in increasing order, with their bits."""
    top = special_bits(fmt, POS_INF)
    return [(bits, decode(fmt, bits)) for bits in range(0, top)]


@pytest.mark.parametrize("name", SMALL)
def test_every_pattern_round_trips(name):
    fmt = FORMATS[name]
    for bits in range(1 << fmt.bits):
        value = decode(fmt, bits)
        if value == NAN:
            assert round_fraction(fmt, value) == special_bits(fmt, NAN)
            continue
        got = round_fraction(fmt, value)
        if value == 0:
            assert got == 0  # -0 decodes as 0; the sign of zero is not part of the contract
        else:
            assert got == bits, hex(bits)


@pytest.mark.parametrize("name", SMALL)
def test_every_midpoint_ties_to_even_and_neighbours_round_to_nearest(name):
    fmt = FORMATS[name]
    values = finite_ascending(fmt)
    for (a_bits, a), (b_bits, b) in zip(values, values[1:]):
        mid = (a + b) / 2
        tiny = (b - a) / 1024
        even = a_bits if a_bits % 2 == 0 else b_bits
        assert round_fraction(fmt, mid) == even
        assert round_fraction(fmt, mid - tiny) == a_bits
        assert round_fraction(fmt, mid + tiny) == b_bits
        assert round_fraction(fmt, -mid) == even | fmt.sign_bit


@pytest.mark.parametrize("name", list(FORMATS))
def test_overflow_threshold(name):
    fmt = FORMATS[name]
    top = fmt.max_finite
    half_ulp = ulp(fmt, top) / 2
    max_bits = special_bits(fmt, POS_INF) - 1
    assert round_fraction(fmt, top + half_ulp - Fraction(1, 1 << 2000)) == max_bits
    assert round_fraction(fmt, top + half_ulp) == special_bits(fmt, POS_INF)  # the tie goes to even: inf
    assert round_fraction(fmt, -(top * 4)) == special_bits(fmt, NEG_INF)


@pytest.mark.parametrize("name", list(FORMATS))
def test_underflow_threshold(name):
    fmt = FORMATS[name]
    tiny = fmt.min_subnormal
    assert round_fraction(fmt, tiny / 2) == 0  # tie with 0, which is even
    assert round_fraction(fmt, tiny / 2 + Fraction(1, 1 << 3000)) == 1
    assert round_fraction(fmt, -tiny / 3) == fmt.sign_bit  # -0


def test_float16_agrees_with_numpy_single_rounding():
    # numpy casts float64 -> float16 in one correctly rounded step: an independent oracle
    rng = np.random.default_rng(7)
    doubles = np.concatenate([rng.standard_normal(20000) * 2.0 ** rng.integers(-30, 20, 20000),
                              rng.uniform(-70000, 70000, 5000)])
    fmt = FORMATS["float16"]
    with np.errstate(over="ignore"):  # values beyond 65520 become inf, as they should
        expected = doubles.astype(np.float16).view(np.uint16)
    got = [round_fraction(fmt, Fraction(float(d))) for d in doubles]
    assert (np.array(got, dtype=np.uint16) == expected).all()


def test_bfloat16_agrees_with_ml_dtypes_on_float32_inputs():
    # float32 -> bfloat16 is one rounding in ml_dtypes; only ever used here as an oracle
    rng = np.random.default_rng(11)
    singles = (rng.standard_normal(20000) * 2.0 ** rng.integers(-120, 120, 20000)).astype(np.float32)
    fmt = FORMATS["bfloat16"]
    expected = singles.astype(ml_dtypes.bfloat16).view(np.uint16)
    got = [round_fraction(fmt, Fraction(float(s))) for s in singles]
    assert (np.array(got, dtype=np.uint16) == expected).all()


def test_known_encodings():
    assert round_fraction(FORMATS["float16"], Fraction(1, 10)) == 0x2E66
    assert round_fraction(FORMATS["bfloat16"], Fraction(1, 10)) == 0x3DCD
    assert round_fraction(FORMATS["float32"], Fraction(1, 10)) == 0x3DCCCCCD
    assert round_fraction(FORMATS["float64"], Fraction(1, 10)) == 0x3FB999999999999A
    assert round_fraction(FORMATS["float16"], 65504) == 0x7BFF
    assert round_fraction(FORMATS["float16"], 65520) == 0x7C00  # the overflow tie rounds to inf


def test_round_dyadic_handles_huge_exponents():
    fmt = FORMATS["float32"]
    assert round_dyadic(fmt, 3, -10**12) == 0
    assert round_dyadic(fmt, -3, -10**12) == fmt.sign_bit
    assert round_dyadic(fmt, 1, 10**12) == special_bits(fmt, POS_INF)
    assert round_dyadic(fmt, 3, -2) == round_fraction(fmt, Fraction(3, 4))


def _dyadic(value: Fraction) -> tuple[int, int]:
    """(mantissa, exponent) with value == mantissa * 2**exponent, for a dyadic rational."""
    exponent = -(value.denominator.bit_length() - 1)
    assert value.denominator == 1 << -exponent
    return value.numerator, exponent


@pytest.mark.parametrize("name", SMALL)
def test_round_dyadic_agrees_with_round_fraction_at_every_midpoint(name):
    # round_dyadic rounds in integer shifts (the reference's hot path); round_fraction is the
    # exhaustively checked definition: they agree on each midpoint and its two neighbours
    fmt = FORMATS[name]
    values = [v for _, v in finite_ascending(fmt)] + [fmt.max_finite + ulp(fmt, fmt.max_finite)]
    for a, b in zip(values, values[1:]):
        mid = (a + b) / 2
        for value in (mid, mid - fmt.min_subnormal / 8, mid + fmt.min_subnormal / 8, -mid):
            assert round_dyadic(fmt, *_dyadic(value)) == round_fraction(fmt, value), (name, value)


@pytest.mark.parametrize("name", ["float32", "float64"])
def test_round_dyadic_agrees_with_round_fraction_on_random_dyadics(name):
    fmt, rng = FORMATS[name], np.random.default_rng(11)
    for _ in range(20000):
        length = int(rng.choice([1, fmt.precision, fmt.precision + 1, fmt.precision + 2, 120]))
        mantissa = int(rng.integers(1, 1 << min(length, 62))) << max(0, length - 62)
        mantissa = mantissa << 3 | 4 if rng.random() < 0.3 else mantissa  # ...100: a tie when 3 bits round off
        exponent = int(rng.integers(fmt.emin - fmt.precision - length - 4, fmt.emax - length + 4))
        mantissa = -mantissa if rng.random() < 0.5 else mantissa
        value = Fraction(mantissa) * Fraction(2) ** exponent
        assert round_dyadic(fmt, mantissa, exponent) == round_fraction(fmt, value), (name, mantissa, exponent)


@pytest.mark.parametrize("text, value", [
    ("0x1.8p-3", Fraction(3, 16)), ("-0x1p+1", Fraction(-2)), ("0x.8p0", Fraction(1, 2)),
    ("0X1P-1074", Fraction(1, 1 << 1074)), ("1e-3", Fraction(1, 1000)), ("-2.5", Fraction(-5, 2)),
    ("1_000.5", Fraction(2001, 2)), ("inf", POS_INF), ("-inf", NEG_INF), ("nan", NAN),
])
def test_parse_exact(text, value):
    assert parse_exact(text) == value


@pytest.mark.parametrize("text", ["abc", "0x1.8", "0xp3", "1e", ""])
def test_parse_exact_rejects(text):
    with pytest.raises(ValueError):
        parse_exact(text)
