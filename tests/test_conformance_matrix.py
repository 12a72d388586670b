"""The conformance matrix: every framework against every golden case of the default suite,
every expectation against the run, and the run against the stored baseline.

One test per (framework, case): an unexpected divergence fails; known ones are xfails naming
their causes. One test per expectation: it fails when its scope ran and it explained nothing.
A framework that is not installed is skipped with that reason.
"""
import pytest

from conformance import diff, report
from conformance.adapters import FRAMEWORKS
from conformance.cli import BASELINES_DIR, SUITES
from conformance.expectations import load_expectations
from conformance.matrix import MatrixRun, check, check_expectation, missing_module
from reference.golden import load_suite

SUITE_DIR = SUITES["default"][1]
CASES = load_suite(SUITE_DIR)
EXPECTATIONS = load_expectations()


@pytest.fixture(scope="session")
def matrix(tmp_path_factory):
    return MatrixRun([SUITE_DIR], tmp_path_factory.mktemp("matrix"), EXPECTATIONS)


@pytest.mark.slow
@pytest.mark.parametrize("framework, case", [pytest.param(f, c, id=f"{f}-{c.id}") for f in FRAMEWORKS for c in CASES])
def test_conformance(matrix, framework, case):
    missing = missing_module(framework)
    if missing:
        pytest.skip(f"{framework} is not installed (no module {missing!r})")
    rows = matrix.rows(framework, case.id)
    assert rows, f"no results for {framework} on {case.id}"
    check(rows)


@pytest.mark.slow
@pytest.mark.parametrize("entry", [pytest.param(e, id=f"expectation-{e.id}") for e in EXPECTATIONS])
def test_expectation_still_matches(matrix, entry):
    check_expectation(entry, matrix)


@pytest.mark.slow
def test_the_pinned_versions_match_the_stored_baseline(matrix):
    """Any change of the reference, an adapter or a framework shows as a diff that someone must
    accept: regressions and improvements alike fail until the baseline is updated."""
    baseline_path = BASELINES_DIR / "default-cpu.parquet"
    missing = [f for f in FRAMEWORKS if missing_module(f)]
    if missing:
        pytest.skip(f"the baseline holds every framework; not installed: {', '.join(missing)}")
    baseline = report.read_results(baseline_path)
    current = report.results_frame_from_dicts(matrix.all_rows())
    current = current[current["device"].isin(["cpu", "-"])]  # the baseline is a CPU run
    d = diff.compare(baseline, current, old_label=str(baseline_path), new_label="this run")
    if not d.changes().empty:
        pytest.fail(diff.summary_text(d) + "\nread the diff, then accept it: xent run --out reports/new && "
                    "xent baseline update reports/new", pytrace=False)
