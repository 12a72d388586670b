"""The large suite's generator, at a small vocabulary: golden files in the common format,
correctly rounded (equal to the arbitrary-precision path), deterministic."""
import numpy as np
import pytest

from reference import fast, large, ops
from reference.fast import _exact_rows, _slow
from reference.formats import FORMATS
from reference.golden import load_suite


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("large")
    large.generate(out, vocabularies=(96,))
    return out


def test_suite_has_every_distribution_op_and_dtype(suite):
    cases = load_suite(suite)
    assert len(cases) == len(large.DISTRIBUTIONS) * len(large.OPS)
    assert {c.entry["tags"][1] for c in cases} == {f"distribution:{d}" for d in large.DISTRIBUTIONS}
    assert all("classes:96" in c.entry["features"] and c.dtypes == list(large.DTYPES) for c in cases)


def test_expected_values_equal_the_exact_path(suite):
    for case in load_suite(suite):
        arrays = case.arrays()
        for dtype in case.dtypes:
            fmt = FORMATS[dtype]
            x = fast.to_float64(arrays[f"input.{dtype}"], fmt)
            if case.op == "log_softmax":
                compute = lambda: ops.log_softmax(_exact_rows(x))  # noqa: E731
            else:
                compute = lambda: ops.cross_entropy(_exact_rows(x), arrays["target"], target_kind="index",  # noqa: E731
                                                    reduction=case.params["reduction"])
            loss, grad = _slow(compute, fmt)
            expected = case.expected(arrays, dtype)["canonical"]
            assert np.array_equal(expected["loss"].bits, loss) and np.array_equal(expected["grad"].bits, grad)
            assert expected["loss"].cond.dtype == np.float64


def test_generation_is_deterministic(suite, tmp_path):
    large.generate(tmp_path, vocabularies=(96,))
    for f in suite.iterdir():
        assert f.read_bytes() == (tmp_path / f.name).read_bytes()
