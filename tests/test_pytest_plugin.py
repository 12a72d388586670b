"""The pytest plugin as a user's project meets it: a folder with a case file and an
expectations file, `pytest --xent-...` run in a fresh process (pytester), real frameworks."""
import json
import re

import pyarrow.parquet as pq
import pytest

from conformance.adapters import FRAMEWORKS, missing_module

pytest_plugins = ["pytester"]

CASES = """
[[case]]
id = "mine-ordinary"
op = "log_softmax"
dtypes = ["float32"]
input = [[0.5, -1.25, 2.0, 0.0]]

[[case]]
id = "mine-ignored-neg-inf-row"
op = "cross_entropy"
dtypes = ["float64"]
input = [[-inf, -inf, -inf], [0.5, 1.0, -1.0]]
target = [-100, 1]
ignore_index = -100
"""

# torch's known NaN gradient for an ignored all -inf row, and an entry that explains nothing
EXPECTATIONS = """
[[cause]]
id = "ignored-row-nan"
frameworks = ["torch"]
ops = ["cross_entropy"]
features = ["ignore_index", "value:-inf"]
outputs = ["grad"]
verdicts = ["special_mismatch"]
reason = "NaN gradient on an ignored all -inf row"
evidence = "https://github.com/pytorch/pytorch/issues/11551"

[[cause]]
id = "never-happens"
frameworks = ["torch"]
ops = ["log_softmax"]
verdicts = ["inaccurate"]
reason = "a divergence torch does not have"
evidence = "https://example.org/none"
"""

needs_torch = pytest.mark.skipif(missing_module("torch") is not None, reason="torch is not installed")


def _column(pytester, label: str, column: str) -> set:
    # pyarrow, not pandas: pytester restores sys.modules after each test, and pandas' parquet
    # types registered twice in pyarrow fail
    return set(pq.read_table(pytester.path / "out" / label / "results.parquet", columns=[column])
               .column(column).to_pylist())


def _project(pytester, expectations=EXPECTATIONS):
    pytester.makefile(".toml", mine=CASES, expectations=expectations)
    return ["-p", "no:cacheprovider", "--xent-cases", "mine.toml", "--xent-expectations", "expectations.toml",
            "--xent-out", "out", "-rA"]


def test_options_make_one_test_per_framework_and_case(pytester):
    result = pytester.runpytest_subprocess(*_project(pytester), "--collect-only", "-q")
    ids = [line for line in result.outlines if "::" in line]
    for framework in FRAMEWORKS:
        assert f"xent::{framework}::{framework}-mine-ordinary" in ids
        assert f"xent::{framework}::{framework}-mine-ignored-neg-inf-row" in ids
    assert "xent::torch::expectation-never-happens-torch" in ids


def test_a_bad_option_is_one_clear_error(pytester):
    result = pytester.runpytest_subprocess("--xent-frameworks", "tourch")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--xent-frameworks tourch: choose from torch, tensorflow, jax*"])


def test_without_options_the_plugin_adds_nothing(pytester):
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.slow
@needs_torch
def test_known_xfails_stale_fails_and_a_selection_runs_only_itself(pytester):
    result = pytester.runpytest_subprocess(*_project(pytester), "--xent-frameworks", "torch")
    # the known NaN is an xfail naming its cause; the entry that explained nothing fails as stale
    result.assert_outcomes(passed=2, xfailed=1, failed=1)
    result.stdout.fnmatch_lines(["*XFAIL*torch-mine-ignored-neg-inf-row*known: ignored-row-nan*"])
    result.stdout.fnmatch_lines(["*expectation never-happens no longer matches: the framework changed*"])
    assert _column(pytester, "torch", "case_id") == {"mine-ordinary", "mine-ignored-neg-inf-row"}

    # -k: one case runs, and nothing else; staleness is not judged on a selection
    result = pytester.runpytest_subprocess(*_project(pytester), "--xent-frameworks", "torch",
                                           "-k", "mine-ordinary or expectation")
    result.assert_outcomes(passed=1, skipped=2)
    assert _column(pytester, "torch", "case_id") == {"mine-ordinary"}


@pytest.mark.slow
@needs_torch
def test_an_unexpected_divergence_shows_inputs_values_and_a_reproducer(pytester):
    result = pytester.runpytest_subprocess(*_project(pytester, expectations="cause = []\n"),
                                           "--xent-frameworks", "torch", "-k", "ignored")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "unexpected divergence(s): torch" in text and "mine-ignored-neg-inf-row" in text
    assert "inputs:   input(2, 3)=[-inf, -inf, -inf, 0.5, 1.0, -1.0]" in text
    assert re.search(r"observed: \[nan, nan, nan, ", text) and "of the tolerance" in text
    (path,) = {m for m in re.findall(r"reproducer: python (\S+)", text) if "functional" in m and "float64" in m}
    assert path.endswith(".py") and "the first reproducer, which runs as it is" in text


@pytest.mark.slow
@pytest.mark.skipif(any(missing_module(f) for f in ("torch", "jax")), reason="needs torch and jax")
def test_xdist_runs_each_framework_once_in_its_own_worker(pytester):
    pytest.importorskip("xdist")
    result = pytester.runpytest_subprocess(*_project(pytester), "--xent-frameworks", "torch,jax", "-n", "2", "-v")
    result.assert_outcomes(passed=4, xfailed=1, failed=1)  # jax conforms on both; torch as above
    for framework in ("torch", "jax"):  # all of a framework's tests ran in one xdist worker
        workers = set(re.findall(rf"\[(gw\d+)\] \[ *\d+%\] \w+ xent::{framework}::", result.stdout.str()))
        assert len(workers) == 1, workers


def test_the_entry_point_is_declared():
    from importlib.metadata import entry_points

    names = {e.name: e.value for e in entry_points(group="pytest11")}
    assert names.get("xent") == "conformance.pytest_plugin", json.dumps(names)


@pytest.mark.slow
@needs_torch
def test_runtimes_side_by_side_and_a_baseline_of_another_runtime(pytester):
    """--xent-runtime: each framework under each runtime is its own set of tests; a runtime the
    baseline does not hold is compared with the baseline's runtime of that framework."""
    import sys

    args = [*_project(pytester), "--xent-frameworks", "torch"]
    pytester.runpytest_subprocess(*args)  # the stored run: torch under the local runtime
    result = pytester.runpytest_subprocess(*args, "--xent-runtime", "local", f"second={sys.executable}",
                                           "--xent-baseline", "out/torch", "-k", "not never", "-v")
    result.assert_outcomes(passed=6, xfailed=2)
    text = result.stdout.str()
    assert "PASSED xent::torch@second::torch@second-mine-ordinary" in text
    assert "PASSED xent::torch@second::baseline-torch@second" in text
    assert _column(pytester, "torch@second", "runtime") == {"second"}
