"""The large suite's generator, at a small vocabulary: golden files in the common format,
correctly rounded (equal to the arbitrary-precision path), deterministic."""
import numpy as np
import pytest

from reference import large
from reference.exact import exact_rows, slow_outputs
from reference.formats import FORMATS, to_float64
from reference.golden import load_suite
from reference.ops.cross_entropy import cross_entropy
from reference.ops.log_softmax import log_softmax


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("large")
    large.generate(out, vocabularies=(96,))
    return out


def test_suite_has_every_distribution_op_and_dtype(suite):
    cases = load_suite(suite)
    assert len(cases) == len(large.DISTRIBUTIONS) * len(large.LARGE_OPS)
    assert {c.entry["tags"][1] for c in cases} == {f"distribution:{d}" for d in large.DISTRIBUTIONS}
    assert all("classes:96" in c.entry["features"] and c.dtypes == list(large.DTYPES) for c in cases)


def exact_outputs(case, arrays, dtype):
    x = to_float64(arrays[f"input.{dtype}"], FORMATS[dtype])
    if case.op == "log_softmax":
        return x, log_softmax(exact_rows(x))
    return x, cross_entropy(exact_rows(x), arrays["target"], target_kind="index", reduction=case.params["reduction"])


def test_expected_values_equal_the_exact_path(suite):
    for case in load_suite(suite):
        arrays = case.arrays()
        for dtype in case.dtypes:
            _, out = exact_outputs(case, arrays, dtype)
            loss, grad = slow_outputs(lambda: out, FORMATS[dtype])
            expected = case.expected(arrays, dtype)["canonical"]
            assert np.array_equal(expected["loss"].bits, loss) and np.array_equal(expected["grad"].bits, grad)


def test_condition_scales_equal_the_exact_paths(suite):
    """fast.condition_scales is a vectorised copy of the ops' condition formulas: the two must agree
    (float64 estimates of the same expressions; the tolerance scales them by 4u)."""
    for case in load_suite(suite):
        arrays = case.arrays()
        for dtype in case.dtypes:
            _, out = exact_outputs(case, arrays, dtype)
            expected = case.expected(arrays, dtype)["canonical"]
            assert np.allclose(expected["loss"].cond, out.loss_cond.astype(float), rtol=1e-6, atol=0)
            assert np.allclose(expected["grad"].cond, out.grad_cond.astype(float), rtol=1e-6, atol=0)


def test_generation_is_deterministic(suite, tmp_path):
    large.generate(tmp_path, vocabularies=(96,))
    for f in suite.iterdir():
        assert f.read_bytes() == (tmp_path / f.name).read_bytes()
