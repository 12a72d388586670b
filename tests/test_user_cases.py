"""User-style case files (tests/user_cases/), judged by the whole suite with no false alarm.

- probability_targets.toml: one-hot and soft probability targets, label smoothing, class
  weights, every reduction, a -inf logit on a zero target, large logits.
- llm_head.toml: an LLM head (bfloat16 logits, 4 x 131072, from make_llm_head.py) with ignored
  positions and labels past 256 and 65504.
- from_framework_tests.toml: cases transcribed from Keras', optax's and TensorFlow's own loss
  tests, with the values their maintainers assert (ASSERTED below, from the file's comments).

The fast test checks the reference against those asserted values. The slow tests run
`xent run --cases <all three files>` over torch, tensorflow and jax in a subprocess and require:
exit code 0, every task run, no stale expectation, no divergence the expectations file does not
explain, and a reproducer on disk for every diverging task (with its data file for a large case).
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reference.casefile import load_case_files
from reference.formats import FORMATS, to_float64
from reference.golden import generate, load_suite

from .conftest import ROOT

USER_CASES = ROOT / "tests" / "user_cases"
CASE_FILES = ("probability_targets.toml", "llm_head.toml", "from_framework_tests.toml")
FRAMEWORKS = ("torch", "tensorflow", "jax")
SETTLED = ("conforms", "unsupported")  # every other verdict is a divergence

# Keras' assertAlmostEqual(x, y) is np.testing.assert_almost_equal(decimal=3): |x - y| < 1.5e-3
KERAS_DECIMAL_3 = {"rtol": 0.0, "atol": 1.5e-3}
KERAS_ALL_CLOSE = {"rtol": 1e-6, "atol": 1e-6}
TF_XENT = {"rtol": 1e-3, "atol": 1e-3}

# case id -> {output: (value the upstream test asserts, the tolerance it asserts it with)};
# sources, line by line, in tests/user_cases/from_framework_tests.toml
ASSERTED = {
    "keras-cce-logits-unweighted": {"loss": (0.0573, KERAS_DECIMAL_3)},
    "keras-cce-logits-no-reduction": {"loss": ([0.001822, 0.000459, 0.169846], KERAS_ALL_CLOSE)},
    "keras-cce-label-smoothing": {"loss": (400.0 * 0.1 / 3.0, KERAS_DECIMAL_3)},
    "keras-scce-ignore-class": {"loss": ([[0.0, 1.480129]], KERAS_ALL_CLOSE)},
    "keras-bce-logits-unweighted": {"loss": (3.3333, KERAS_DECIMAL_3)},
    "keras-bce-logits-no-reduction": {"loss": ([0.0, 6.666], {"rtol": 1e-6, "atol": 1e-3})},
    "keras-bce-logits-label-smoothing": {"loss": ((10.0 + 5.0 * 0.1) / 3.0, KERAS_DECIMAL_3)},
    "optax-softmax-ce-batched": {"loss": ([9.00013, 3.0696733], {"rtol": 1e-7, "atol": 1e-4})},
    "optax-safe-softmax-ce-batched": {
        "loss": ([9.00013, 3.0696733, 0.693147, np.inf, 0.0], {"rtol": 1e-7, "atol": 1e-4})},
    "optax-sigmoid-bce-large-logit": {"loss": (5e08, {"rtol": 1e-6, "atol": 1e-6})},
    "tf-xent-np-soft-targets": {
        "loss": ([1.3862, 1.9401], TF_XENT),
        "grad": ([[0.25, 0.25, 0.25, -0.75], [0.0321, -0.4129, -0.2632, 0.6439]], TF_XENT)},
    "tf-sparse-xent-np": {
        "loss": ([1.3862, 3.4420], TF_XENT),
        "grad": ([[0.25, 0.25, 0.25, -0.75], [-0.968, 0.087, 0.237, 0.6439]], TF_XENT)},
}
# transcribed cases whose upstream assertion is not the canonical value, and why
NON_CANONICAL = {
    "keras-cce-probs-unweighted": "Keras divides each probability row by its sum before the log "
                                  "(asserts 0.3239; the canonical loss of the rows as given is 0.0946)",
}


def _make_llm_head():
    spec = importlib.util.spec_from_file_location("make_llm_head", USER_CASES / "make_llm_head.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prepare_cases(folder: Path) -> list[Path]:
    """The three case files beside freshly generated .npy arrays (not kept in git)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in CASE_FILES:
        shutil.copyfile(USER_CASES / name, folder / name)
    _make_llm_head().write(folder)
    return [folder / name for name in CASE_FILES]


# --- fast: the reference against the maintainers' asserted values --------------------------------

@pytest.fixture(scope="module")
def transcribed(tmp_path_factory):
    out = tmp_path_factory.mktemp("from_framework_tests")
    generate(load_case_files([USER_CASES / "from_framework_tests.toml"]), out / "golden", "user")
    return {case.id: case for case in load_suite(out / "golden")}


def test_every_transcribed_case_is_compared_or_says_why_not(transcribed):
    assert set(transcribed) == set(ASSERTED) | set(NON_CANONICAL)
    assert not set(ASSERTED) & set(NON_CANONICAL)


@pytest.mark.parametrize("case_id", sorted(ASSERTED))
def test_reference_matches_the_value_the_framework_test_asserts(transcribed, case_id):
    case = transcribed[case_id]
    assert "float64" in case.dtypes
    expected = case.expected(case.arrays(), "float64")["canonical"]
    for output, (asserted, tolerance) in ASSERTED[case_id].items():
        asserted = np.asarray(asserted, dtype=np.float64)
        ours = to_float64(expected[output].bits, FORMATS["float64"])
        assert ours.size == asserted.size, (case_id, output, ours.shape, asserted.shape)
        np.testing.assert_allclose(ours.reshape(asserted.shape), asserted, **tolerance,
                                   err_msg=f"{case_id} {output}: reference vs the upstream test's assertion")


# --- slow: the whole suite judges the user files -------------------------------------------------

@pytest.fixture(scope="module")
def user_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("user_run")
    files = _prepare_cases(work / "cases")
    out, summary_path = work / "out", work / "summary.json"
    command = [sys.executable, "-m", "conformance.cli", "run", "--cases", *map(str, files),
               "--frameworks", ",".join(FRAMEWORKS), "--out", str(out), "--json", str(summary_path)]
    start = time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    elapsed = time.monotonic() - start
    print(f"\nxent run over {len(files)} user case files: {elapsed:.1f} s, exit code {proc.returncode}")
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    df = info = None
    if (out / "results.parquet").exists():
        from conformance import report
        run = report.read_run(out / "results.parquet")
        df, info = run.rows, run.info
    from conformance import repro
    specs = load_case_files(files)
    return {"proc": proc, "out": out, "summary": summary, "df": df, "info": info, "elapsed": elapsed,
            "case_ids": {spec.id for spec in specs},
            # cases whose reproducers keep their arrays in a data file beside the script
            "large": {spec.id for spec in specs if spec.input.size > repro.MAX_ELEMENTS}}


def _tail(proc) -> str:
    return f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


def _results(run):
    if run["df"] is None:
        pytest.fail(f"no results.parquet under {run['out']}\n{_tail(run['proc'])}")
    return run["df"]


def _divergent(df):
    return df[~df["verdict"].isin(SETTLED)]


@pytest.mark.slow
def test_user_run_exits_zero_and_runs_every_case(user_run):
    proc = user_run["proc"]
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{_tail(proc)}"
    summary = user_run["summary"]
    assert summary is not None, f"no --json summary written\n{_tail(proc)}"
    assert summary["incomplete"] is None, summary["incomplete"]
    df = _results(user_run)
    for framework in FRAMEWORKS:
        ran = set(df.loc[df["framework"] == framework, "case_id"])
        assert ran == user_run["case_ids"], (framework, sorted(user_run["case_ids"] - ran))


@pytest.mark.slow
def test_user_run_reports_no_stale_expectation(user_run):
    _results(user_run)
    stale = user_run["info"].stale
    assert stale == {}, f"results.parquet: stale expectations: {stale}"
    summary = user_run["summary"]
    assert summary is not None, f"no --json summary written\n{_tail(user_run['proc'])}"
    assert summary["stale"] == {}, f"stale expectations on user case files: {summary['stale']}"


@pytest.mark.slow
def test_user_run_has_no_unexpected_divergence(user_run):
    df = _divergent(_results(user_run))
    unexpected = df[df["known"].fillna("") == ""]
    columns = ["framework", "api", "case_id", "dtype", "device", "output", "verdict", "detail", "variants"]
    lines = [" | ".join(str(row[c]) for c in columns) for row in unexpected[columns].to_dict("records")]
    assert not lines, f"{len(lines)} unexpected divergences ({' | '.join(columns)}):\n" + "\n".join(lines)


DATA_FILE = re.compile(r'^DATA_FILE = "([^"]+\.npz)"$', re.M)


@pytest.mark.slow
def test_every_diverging_task_has_a_reproducer_on_disk(user_run):
    from conformance import repro
    df = _divergent(_results(user_run))
    out = user_run["out"]
    large = user_run["large"]
    assert large, "llm_head.toml should hold large cases"
    keys = ["runtime", "framework", "case_id", "api", "dtype", "device"]
    problems = []
    for key, rows in df.groupby(keys, sort=True):
        row = dict(zip(keys, key))
        task = f"{row['framework']} {row['api']} {row['case_id']} {row['dtype']} {row['device']}"
        texts = {t for t in rows["reproducer"].fillna("") if t}
        if not texts:
            problems.append(f"{task}: empty reproducer column")
            continue
        path = out / repro.file_name(row)
        if not path.exists():
            problems.append(f"{task}: no file {path.relative_to(out)}")
            continue
        data = DATA_FILE.search(path.read_text())
        if row["case_id"] in large and data is None:
            problems.append(f"{task}: a large case's reproducer names no DATA_FILE")
        if data is not None and not path.with_name(data.group(1)).exists():
            problems.append(f"{task}: data file {data.group(1)} missing beside {path.name}")
    assert not problems, f"{len(problems)} diverging tasks without a usable reproducer:\n" + "\n".join(problems)


@pytest.mark.slow
def test_a_dtype_subset_with_the_default_suite_is_judged_without_false_alarms(tmp_path):
    """The user's files beside the default suite, float32 only: the expectations whose witnesses
    (rows of the stored baseline) ran in float32 are judged, the others are not; none is stale,
    nothing is unexpected. (An earlier rule called every entry whose scope a subset touched and
    that explained nothing 'stale'.)"""
    from conformance import report
    files = _prepare_cases(tmp_path / "cases")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--cases", *map(str, files),
                           "--suite", "default", "--dtypes", "float32", "--frameworks", ",".join(FRAMEWORKS),
                           "--out", str(out), "--fail-on", "unexpected,stale"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, _tail(proc)
    run = report.read_run(out / "results.parquet")
    df, info = run.rows, run.info
    assert set(df["dtype"]) == {"float32"} and info.stale == {}
    assert "no longer matches" not in proc.stdout
    judged = {who: set(seen["witnessed"]) for who, seen in info.expectations.items()}
    assert any(judged.values())  # staleness was judged where it could be, not switched off
