"""xent diff on synthetic pairs of results: each class, missing rows, a suite mismatch, the
runtime pairing, and the command line's exit codes."""
import json
import subprocess
import sys
import time

import pandas as pd

from conformance import diff, report

from .test_report import row


def frame(*rows):
    return report.results_frame(list(rows))


def classes(old, new, **kw):
    d = diff.compare(frame(*old), frame(*new), **kw)
    return dict(zip(d.pairs["case_id"] + "/" + d.pairs["output"], d.pairs["class"])), d


BASE = [row(case_id="a"), row(case_id="b", verdict="variant", variants="mean_by_count", detail="mean_by_count",
                               known="k"),
        row(case_id="c", verdict="inaccurate", detail="off"), row(case_id="d", max_tol_ratio=0.1)]


def test_each_class():
    new = [row(case_id="a", verdict="raised", error_type="ValueError", detail="ValueError: shapes"),  # regression
           row(case_id="b", verdict="variant", variants="mean_by_count", detail="mean_by_count", known=""),  # known -> unknown
           row(case_id="c"),  # fix
           row(case_id="d", max_tol_ratio=0.9),  # drift beyond 0.25 of the tolerance
           row(case_id="e")]  # new
    got, d = classes(BASE, new)
    assert got == {"a/loss": "regression", "b/loss": "regression", "c/loss": "fix", "d/loss": "changed",
                   "e/loss": "new"}
    assert d.counts() == {"regression": 2, "fix": 1, "changed": 1, "new": 1, "missing": 0}
    assert diff.failed(d, ("regression", "missing")) and not diff.failed(d, ("missing",))


def test_unchanged_runs_are_the_same_and_pass():
    got, d = classes(BASE, BASE)
    assert set(got.values()) == {"same"} and not diff.failed(d, ("regression", "missing"))
    assert "no changes" in diff.summary_text(d)


def test_a_crashed_or_skipped_framework_is_not_a_clean_run():
    got, _ = classes(BASE, [row(case_id="a", verdict="crashed", detail="worker exited"), *BASE[1:3]])
    assert got["a/loss"] == "regression" and got["d/loss"] == "missing"


def test_changed_among_non_conforming():
    old = [row(case_id="c", verdict="variant", variants="zero_times_inf_nan", known="k1"),
           row(case_id="f", verdict="raised", error_type="ValueError")]
    new = [row(case_id="c", verdict="variant", variants="max_shift_inf_nan", known="k2"),
           row(case_id="f", verdict="raised", error_type="TypeError")]
    got, _ = classes(old, new)
    assert got == {"c/loss": "changed", "f/loss": "changed"}


def test_runs_of_different_golden_suites_are_restricted_with_a_notice():
    old = [row(case_id="a"), row(case_id="b", case_sha256="1" * 64), row(case_id="gone")]
    new = [row(case_id=c.case_id, suite_hash="t" * 64, case_sha256=c.case_sha256)
           for c in (row(case_id="a"), row(case_id="b", case_sha256="2" * 64), row(case_id="added"))]
    got, d = classes(old, new)
    assert got == {"a/loss": "same"}
    assert d.notices and "different golden files" in d.notices[0] and "1 whose golden file changed" in d.notices[0]


def test_two_runtimes_of_one_framework_pair_by_framework_and_several_by_runtime():
    old = [row(case_id="a", runtime="jax-0.9", framework="jax")]
    new = [row(case_id="a", runtime="local", framework="jax", verdict="raised")]
    got, _ = classes(old, new)
    assert got == {"a/loss": "regression"}  # the version check
    both = [*old, row(case_id="a", runtime="jax-0.4", framework="jax")]
    got, d = classes(both, both)
    assert set(got.values()) == {"same"} and len(d.pairs) == 2


def test_cli_diff_exit_codes_json_and_speed(tmp_path):
    old, new = tmp_path / "old.parquet", tmp_path / "new.parquet"
    report.write_results(frame(*BASE), old)
    report.write_results(frame(*BASE[:3]), new)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "diff", str(old), str(new),
                           "--json", str(tmp_path / "d.json")], capture_output=True, text=True)
    assert time.perf_counter() - start < 30  # the budget for two default-suite runs is 5 s: benchmarks/
    assert done.returncode == 1 and "1 missing" in done.stdout, done.stdout + done.stderr
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["counts"]["missing"] == 1 and data["rows"][0]["case_id"] == "d"
    assert (tmp_path / "diff.html").exists()
    same = subprocess.run([sys.executable, "-m", "conformance.cli", "diff", str(old), str(old)],
                          capture_output=True, text=True)
    assert same.returncode == 0
    relaxed = subprocess.run([sys.executable, "-m", "conformance.cli", "diff", str(old), str(new), "--fail-on", "regression"],
                             capture_output=True, text=True)
    assert relaxed.returncode == 0


def test_stored_frames_keep_the_stale_expectations(tmp_path):
    df = frame(*BASE)
    df.attrs["stale"] = {"torch (local)": ["some-cause"]}
    report.write_results(df, tmp_path / "r.parquet")
    assert pd.read_parquet(tmp_path / "r.parquet").attrs["stale"] == {"torch (local)": ["some-cause"]}
