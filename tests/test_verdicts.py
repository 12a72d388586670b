"""The classifier on synthetic observations: every verdict, the tolerance policy, variants."""
import math

import numpy as np
import pytest

from .conftest import ROOT

from conformance.verdicts import TOL_FACTOR, Observed, classify, ulp, values
from reference.golden import Expected

F32 = np.float32


def bits32(*xs):
    return np.array(xs, dtype=F32).view(np.uint32)


def expected(*xs, cond=1.0):
    b = bits32(*xs)
    return Expected(b, np.full(b.shape, cond))


def obs(*xs, dtype="float32"):
    return Observed("ok", dtype, bits32(*xs))


def test_exact_and_within_tolerance_conform():
    e = {"canonical": expected(1.5, -2.0)}
    assert classify(e, None, obs(1.5, -2.0), "float32").verdict == "conforms"
    u = 2.0 ** -24
    near = 1.5 + 4 * u * 1.5  # a few ulps away, inside 8 * u * cond with cond = 4
    v = classify({"canonical": expected(1.5, cond=4.0)}, None, obs(near), "float32")
    assert v.verdict == "conforms" and v.max_ulp > 1 and 0 < v.max_tol_ratio <= 1


def test_beyond_tolerance_is_inaccurate_with_ulps():
    e = {"canonical": expected(1.0, cond=1.0)}
    far = np.nextafter(F32(1.0), F32(2.0))
    for _ in range(40):
        far = np.nextafter(far, F32(2.0))
    v = classify(e, None, Observed("ok", "float32", np.array([far], dtype=F32).view(np.uint32)), "float32")
    assert v.verdict == "inaccurate" and v.max_ulp == pytest.approx(41) and "ulp" in v.detail


def test_one_ulp_always_conforms_even_with_zero_condition():
    e = {"canonical": expected(1.0, cond=0.0)}
    one_up = np.nextafter(F32(1.0), F32(2.0))
    assert classify(e, None, obs(float(one_up)), "float32").verdict == "conforms"


def test_kind_mismatch_is_special_mismatch():
    e = {"canonical": expected(1.0, math.inf)}
    v = classify(e, None, obs(1.0, math.nan), "float32")
    assert v.verdict == "special_mismatch" and v.expected_kind == "finite/+inf" and v.observed_kind == "finite/nan"


def test_matching_specials_conform_and_signed_zeros_are_equal():
    e = {"canonical": expected(math.nan, -math.inf, 0.0)}
    assert classify(e, None, obs(math.nan, -math.inf, -0.0), "float32").verdict == "conforms"


def test_variant_is_named():
    e = {"canonical": expected(math.nan), "empty_mean_zero": expected(0.0), "mean_by_count": expected(2.0)}
    v = classify(e, None, obs(0.0), "float32")
    assert v.verdict == "variant" and v.detail == "empty_mean_zero"


def test_expected_error():
    index_error = Observed("raised", message="IndexError: 3", error_type="IndexError")
    assert classify(None, "domain error: x", index_error, "float32", ("IndexError",)).verdict == "conforms"
    # only the framework's declared domain errors count: an adapter's or a shape error does not
    assert classify(None, "domain error: x", index_error, "float32", ("ValueError",)).verdict == "raised"
    assert classify(None, "domain error: x", index_error, "float32").verdict == "raised"
    v = classify(None, "domain error: x", obs(math.nan), "float32")
    assert v.verdict == "no_error" and v.observed_kind == "nan"


def test_raised_unsupported_crashed():
    e = {"canonical": expected(1.0)}
    assert classify(e, None, Observed("raised", message="ValueError: no"), "float32").verdict == "raised"
    assert classify(e, None, Observed("unsupported", message="no weight"), "float32").verdict == "unsupported"
    assert classify(e, None, Observed("crashed", message="exit -11"), "float32").verdict == "crashed"


def test_shape_mismatch():
    e = {"canonical": Expected(np.array(F32(1.0)).view(np.uint32), np.array(1.0))}
    v = classify(e, None, Observed("ok", "float32", np.zeros((0,), dtype=np.uint32)), "float32")
    assert v.verdict == "shape_mismatch"


def test_other_output_dtype_is_compared_by_value_and_noted():
    e = {"canonical": Expected(np.array([np.float16(0.5)]).view(np.uint16), np.array([1.0]))}
    v = classify(e, None, obs(0.5), "float16")
    assert v.verdict == "conforms" and "returned float32" in v.detail


def test_values_and_ulp_for_bfloat16():
    assert values(np.array([0x3F80, 0xFF80], dtype=np.uint16), "bfloat16").tolist() == [1.0, -math.inf]
    assert ulp(np.array([1.0, 1.5, 0.0]), "bfloat16").tolist() == [2.0 ** -7, 2.0 ** -7, 2.0 ** -133]
    assert ulp(np.array([1.0]), "float16").tolist() == [2.0 ** -10]


def test_policy_constant_is_documented():
    text = (ROOT / "docs" / "tolerance.md").read_text()
    assert f"TOL_FACTOR = {TOL_FACTOR}" in text
