"""A run never loses what it measured: interrupts, a killed main process, a corrupt golden
file, an error inside the runner (slow: real workers)."""
import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import report, runner
from conformance.suites import SUITES
from reference.casefile import parse_cases
from reference.golden import generate

from .test_cli import worker_children

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")]


def start(out: Path, *extra):
    return subprocess.Popen([sys.executable, "-m", "conformance.cli", "run", "--frameworks", "torch", "--out", str(out),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_rows(out: Path, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        files = list((out / "partial").glob("*.jsonl"))
        if files and sum(f.stat().st_size for f in files) > 20_000:
            return
        time.sleep(0.2)
    raise AssertionError("no rows were written")


def workers_of(pid: int) -> list[int]:
    return list(worker_children(pid))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_mid_run_keeps_every_finished_task(tmp_path, sig):
    out = tmp_path / "out"
    proc = start(out)
    wait_for_rows(out)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, stderr
    run = report.read_run(out / "results.parquet")
    df = run.rows
    assert 0 < len(df) < 2 * 2 * 414 * 4 and run.info.incomplete["tasks_not_run"] > 0
    assert "INCOMPLETE" in (out / "report.html").read_text() and "INCOMPLETE" in stderr
    assert not (out / "partial").exists() and df["verdict"].ne("crashed").all()  # stopped, not crashed


def test_a_killed_main_process_leaves_no_worker_and_its_rows_readable(tmp_path):
    out = tmp_path / "out"
    (out / "report.html").parent.mkdir(parents=True)
    (out / "results.parquet").write_text("an older run")  # must not look current afterwards
    proc = start(out)
    wait_for_rows(out)
    assert workers_of(proc.pid)
    orphans_before = set(workers_of(proc.pid))
    proc.kill()
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in orphans_before):
        time.sleep(0.2)
    assert not any(Path(f"/proc/{p}").exists() and b"conformance.worker" in Path(f"/proc/{p}/cmdline").read_bytes()
                   for p in orphans_before)
    assert not (out / "results.parquet").exists()
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "report", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    run = report.read_run(out / "results.parquet")
    assert len(run.rows) > 0 and run.info.incomplete and "INCOMPLETE" in (out / "report.html").read_text()


def test_a_corrupt_golden_file_is_named_and_the_other_cases_run(tmp_path):
    specs = parse_cases([{"id": f"c{i}", "op": "cross_entropy", "input": [["0.5", "-1.25", "2"]], "target": [i],
                          "dtypes": ["float32"]} for i in range(3)], "test")
    golden = generate(specs, tmp_path / "golden", "user").parent
    data = bytearray((golden / "c1.npz").read_bytes())
    data[-10] ^= 0xFF
    (golden / "c1.npz").write_bytes(bytes(data))
    runs = runner.run([golden], ["torch"], out_dir=tmp_path / "o")
    (run,) = runs
    assert {r.case_id for r in run.rows} == {"c0", "c2"} and all(r.verdict == "conforms" for r in run.rows)
    assert len(run.golden_errors) == 1 and "c1" in run.golden_errors[0] and "sha256" in run.golden_errors[0]


def test_an_error_inside_the_runner_is_a_row_and_the_run_goes_on(tmp_path, monkeypatch):
    specs = parse_cases([{"id": f"c{i}", "op": "cross_entropy", "input": [["0.5", "-1.25", "2"]], "target": [i],
                          "dtypes": ["float32"]} for i in range(2)], "test")
    golden = generate(specs, tmp_path / "golden", "user").parent
    real = runner.rows_for

    def flaky(task, *args):
        if task.case.id == "c0":
            raise KeyError("a bug of the classifier")
        return real(task, *args)

    monkeypatch.setattr(runner, "rows_for", flaky)
    (run,) = runner.run([golden], ["torch"], out_dir=tmp_path / "o")
    c0 = [r for r in run.rows if r.case_id == "c0"]
    assert c0 and all(r.verdict == "crashed" and "a bug of the classifier" in r.detail for r in c0)
    assert all(r.verdict == "conforms" for r in run.rows if r.case_id == "c1")


@pytest.mark.parametrize("forks", [True, False])
def test_a_package_of_the_users_working_folder_does_not_shadow_the_workers_own(tmp_path, monkeypatch, forks):
    """`python -m` puts the working folder first on a worker's path: a project with its own
    `reference` package (a common name) had its worker import that one, which ran the user's code
    and failed without our editable install's finder to fall back on."""
    own = tmp_path / "project" / "reference"
    own.mkdir(parents=True)
    (own / "__init__.py").write_text("raise ImportError(\"the user's own 'reference' package was imported\")\n")
    monkeypatch.chdir(own.parent)
    monkeypatch.setattr(runner, "_forks", lambda framework: forks)
    (found,) = runner.run([SUITES["default"][1]], ["torch"], out_dir=tmp_path / "out", case_ids={"ce-mean"})
    assert not found.skipped and found.done == found.planned > 0, found.skipped
