"""xent diff on synthetic pairs of results: each class, missing rows, a suite mismatch, the
runtime pairing, and the command line's exit codes."""
import json
import subprocess
import sys
import time

import pytest

from conformance import diff, report
from conformance.results import Run, RunInfo

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
    assert d.counts() == {"regression": 2, "fix": 1, "raises": 0, "changed": 1, "drift": 0, "new": 1, "missing": 0}
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
    report.write_results(Run(frame(*BASE), RunInfo(stale={"torch (local)": ["some-cause"]})), tmp_path / "r.parquet")
    assert report.read_run(tmp_path / "r.parquet").info.stale == {"torch (local)": ["some-cause"]}


def _moved(r, **kw):
    """The row with its output one bit away (and any other fields given)."""
    bits = bytearray(r.observed_bits)
    bits[0] ^= 1
    return row(**{**vars(r), "observed_bits": bytes(bits), **kw})


VARIANT_ROW = row(case_id="v", verdict="variant", variants="clip_eps_1e-7", known="keras-probabilities-clipped",
                  max_tol_ratio=7.1e44, output="grad")


def test_bits_moved_on_another_machine_are_drift_and_fail_only_when_asked():
    """A baseline from an AVX2 machine against an AVX-512 one: the same verdicts, bits moved."""
    old = [row(case_id="a", max_tol_ratio=0.1), VARIANT_ROW]
    new = [_moved(old[0], max_tol_ratio=0.6, device_name="another CPU"),
           _moved(VARIANT_ROW, max_tol_ratio=7.1000001e44, device_name="another CPU")]
    got, d = classes(old, new)
    assert got == {"a/loss": "drift", "v/grad": "drift"}
    assert not diff.failed(d, ("regression", "missing")) and not diff.failed(d, diff.BASELINE_FAILS)
    assert diff.failed(d, ("drift",))
    text = diff.summary_text(d)
    assert "only bits moved" in text and "a CPU -> another CPU" in text and "7.1e+44 -> 7.1e+44" in text


def test_on_the_same_machine_a_move_beyond_drift_is_a_change():
    old = [row(case_id="a", max_tol_ratio=0.1), VARIANT_ROW, row(case_id="n", verdict="special_mismatch",
                                                                 max_tol_ratio=float("nan"))]
    new = [_moved(old[0], max_tol_ratio=0.6), _moved(VARIANT_ROW, max_tol_ratio=7.1000001e44),
           _moved(old[2])]
    got, d = classes(old, new)
    # far beyond the tolerance one bit is a tiny move (drift); so is one ulp of an unmeasured share
    assert got == {"a/loss": "changed", "v/grad": "drift", "n/loss": "drift"}
    nan = row(**{**vars(old[2]), "observed_bits": b"\x00\x00\xc0\x7f"})  # a finite value became NaN
    got, _ = classes(old[2:], [nan])
    assert got == {"n/loss": "changed"}
    far = row(**{**vars(old[2]), "observed_bits": b"\x08\x00\x80?"})  # 8 ulps away
    got, _ = classes(old[2:], [far])
    assert got == {"n/loss": "changed"}
    assert diff.failed(d, diff.BASELINE_FAILS)
    got, _ = classes(old[:1], [_moved(old[0], max_tol_ratio=0.2)])
    assert got == {"a/loss": "drift"}  # within --drift on the same machine: reported, not a change


def test_a_nan_is_a_nan_whatever_its_payload():
    nan = row(case_id="n", verdict="special_mismatch", observed_bits=b"\x00\x00\xc0\x7f", max_tol_ratio=float("nan"))
    other = row(**{**vars(nan), "observed_bits": b"\x01\x00\xc0\xff"})
    got, _ = classes([nan], [other])
    assert got == {"n/loss": "same"}


def test_runs_that_share_no_case_say_so():
    _, d = classes([row(case_id="a")], [row(case_id="b")])
    assert any("share no case" in n for n in d.notices)


def test_the_stored_baseline_against_itself_from_another_machine_is_not_a_failure():
    """The README's test command on a CPU other than the baseline's: every row of the stored
    baseline, its device_name changed and, within the same verdict, its bits moved by one ulp
    (conforming rows and variant rows whose share of the tolerance is 1e44 alike). Before the
    drift rule this failed: 'share of tolerance 7.1e+44 -> 7.1e+44' was a change."""
    from conformance.suites import BASELINES_DIR
    stored = report.read_results(BASELINES_DIR / "default-cpu.parquet")
    here = stored.copy()
    ok = here["observed_bits"].str.len() > 0
    here.loc[ok, "observed_bits"] = [bytes([b[0] ^ 1]) + b[1:] for b in here.loc[ok, "observed_bits"]]
    far = here["max_tol_ratio"] > 1
    here.loc[far, "max_tol_ratio"] *= 1 + 1e-7
    here.loc[here["verdict"] == "conforms", "max_tol_ratio"] += 0.3 * (1 - here["max_tol_ratio"]).clip(0, 1)
    here["device_name"] = here["device_name"].where(here["device_name"] == "-", "Intel Xeon (torch AVX512)")
    d = diff.compare(stored, here)
    assert d.counts()["drift"] > 1000
    assert not diff.failed(d, diff.BASELINE_FAILS), diff.summary_text(d)
    same_machine = here.assign(device_name=stored["device_name"])
    assert diff.failed(diff.compare(stored, same_machine), diff.BASELINE_FAILS)


def test_fail_on_values_are_checked():
    from conformance.gates import DIFF_CLASSES, parse_names
    assert parse_names("regression,drift", "--fail-on", DIFF_CLASSES) == ("regression", "drift")
    assert parse_names("regression,", "--fail-on", DIFF_CLASSES) == ("regression",)
    for typo in ("regresion", "", ","):
        with pytest.raises(ValueError, match="--fail-on .*choose from regression, fix"):
            parse_names(typo, "--fail-on", DIFF_CLASSES)


def test_what_is_returned_where_an_error_was_expected_is_not_measured():
    """optax's answer to an out-of-range label reads past the row: it may differ run to run, on
    one machine; the verdict (no_error, known) is the measurement."""
    old = row(case_id="o", verdict="no_error", expected_kind="error", known="optax-labels-unchecked",
              max_tol_ratio=float("nan"))
    got, d = classes([old], [_moved(old)])
    assert got == {"o/loss": "drift"} and not diff.failed(d, diff.BASELINE_FAILS)


def test_a_backend_diff_pairs_two_frameworks_of_one_api_table_in_their_default_modes(tmp_path):
    keras = dict(api="keras.losses.X", device_name="a CPU")
    rows = [row(case_id="a", framework="keras-jax", mode="jit", verdict="no_error", **keras),
            row(case_id="a", framework="keras-torch", mode="eager", verdict="conforms", observed_dtype="",
                observed_bits=b"", error_type="IndexError", **keras),
            row(case_id="b", framework="keras-jax", mode="jit", **keras),
            row(case_id="b", framework="keras-jax", mode="eager", verdict="inaccurate", **keras),  # not its default
            row(case_id="b", framework="keras-torch", mode="eager", verdict="inaccurate", detail="off", **keras),
            row(case_id="a", framework="torch", api="torch.f")]
    path = tmp_path / "run.parquet"
    report.write_results(frame(*rows), path)
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "diff", str(path), "--backends", "keras-jax",
                           "keras-torch", "--json", str(tmp_path / "d.json")], capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr  # b regressed
    assert "keras-jax (jit)" in done.stdout and "keras-torch (eager)" in done.stdout
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["counts"]["raises"] == 1 and data["counts"]["regression"] == 1
    assert sum(data["counts"].values()) == 2  # torch's rows and keras-jax's eager row are not in it
