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
# (the stored run BEFORE records it as the cause of that NaN: the NaN is its witness)
BEFORE = """
[[cause]]
id = "never-happens"
frameworks = ["torch"]
ops = ["cross_entropy"]
verdicts = ["special_mismatch"]
reason = "what an older expectations file said about the NaN"
evidence = "https://example.org/none"
"""
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
    # a user's own cases witnessed no expectation in the stored baseline: nothing to judge stale
    assert not [i for i in ids if "expectation-" in i]


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
    # the stored run: the older file's never-happens explained the NaN gradient (its witness)
    pytester.makefile(".toml", before=BEFORE)
    before = pytester.runpytest_subprocess(*_project(pytester), "--xent-frameworks", "torch",
                                           "--xent-expectations", "before.toml", "--xent-out", "before")
    before.assert_outcomes(passed=1, xfailed=1)
    with_baseline = [*_project(pytester), "--xent-frameworks", "torch", "--xent-baseline=before/torch"]
    # what pytest made of each xfail: the reason alone, not a formatted traceback (0.2 s apiece)
    pytester.makeconftest("def pytest_runtest_logreport(report):\n"
                          "    if getattr(report, 'wasxfail', ''):\n"
                          "        open('xfail-reprs.txt', 'a').write(repr(str(report.longrepr)) + '\\n')\n")
    result = pytester.runpytest_subprocess(*with_baseline, "-k", "not baseline")
    # the known NaN is an xfail naming its cause; the entry whose witness ran and that explained
    # nothing fails as stale; ignored-row-nan witnessed nothing in the stored run: no test
    result.assert_outcomes(passed=1, xfailed=1, failed=1)
    result.stdout.fnmatch_lines(["*XFAIL*torch-mine-ignored-neg-inf-row*known: ignored-row-nan*"])
    (xfail_repr,) = (pytester.path / "xfail-reprs.txt").read_text().splitlines()
    assert xfail_repr.startswith("'known: ignored-row-nan") and ".py:" not in xfail_repr, xfail_repr[:300]
    result.stdout.fnmatch_lines(["*expectation never-happens no longer matches: the framework changed*"])
    assert _column(pytester, "torch", "case_id") == {"mine-ordinary", "mine-ignored-neg-inf-row"}

    # -k: one case runs, and nothing else; the stale entry's witness did not run: skipped, with why
    result = pytester.runpytest_subprocess(*with_baseline, "-k", "mine-ordinary or expectation", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*none of the cases that showed never-happens*ran*cannot be judged*"])
    assert _column(pytester, "torch", "case_id") == {"mine-ordinary"}

    # the baseline test with no case run compares nothing: a skip that says so, never a pass
    result = pytester.runpytest_subprocess(*with_baseline, "-k", "baseline", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*nothing compared: no case of torch ran that the baseline holds (0 cases ran)*"])


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
    result.assert_outcomes(passed=3, xfailed=1)  # jax conforms on both; torch as above
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
                                           "--xent-baseline=out/torch", "-v")
    result.assert_outcomes(passed=6, xfailed=2)
    text = result.stdout.str()
    assert "PASSED xent::torch@second::torch@second-mine-ordinary" in text
    assert "PASSED xent::torch@second::baseline-torch@second" in text
    assert _column(pytester, "torch@second", "runtime") == {"second"}


@pytest.mark.slow
@pytest.mark.skipif(missing_module("jax") is not None, reason="jax is not installed")
def test_a_case_no_api_can_express_is_skipped_with_the_reasons(pytester):
    """optax has no loss taking label smoothing with class weights: nothing is checked, so the
    test is a skip naming why, and the terminal says which cases no API could express."""
    pytester.makefile(".toml", mine="""
[[case]]
id = "mine-smoothed-weighted"
op = "cross_entropy"
dtypes = ["float32"]
input = [[0.5, -1.25, 2.0]]
target = [2]
weight = [1.0, 2.0, 0.5]
label_smoothing = 0.1
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--xent-cases", "mine.toml",
                                           "--xent-frameworks", "jax", "--xent-out", "out", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*xent jax: no API can express 1 case(s), skipped: mine-smoothed-weighted*",
                                 "*no API of jax can express mine-smoothed-weighted: *"])
    assert "no reproducers (nothing diverged)" in result.stdout.str()


@needs_torch
def test_a_mode_asked_for_that_cannot_run_here_makes_a_passing_test_a_skip_that_says_why(pytester, setuptools_hidden):
    # without setuptools (torch 2.9 in a uv environment) compile cannot run; eager still runs
    # and conforms, and what was not checked is no pass
    result = pytester.runpytest_subprocess(*_project(pytester), "--xent-frameworks", "torch",
                                           "--xent-modes", "eager,compile", "-k", "mine-ordinary", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([
        "xent torch: mode compile not run, it cannot run here: ModuleNotFoundError: No module named 'setuptools'",
        "SKIPPED*torch mine-ordinary: eager passed; not checked: mode compile cannot run here "
        "(ModuleNotFoundError: No module named 'setuptools')"])
    assert _column(pytester, "torch", "mode") == {"eager"}
