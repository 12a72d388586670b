"""The CLI end to end on a small case file, with a real framework, and the runner's
crash and hang handling with real worker processes."""
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conformance import runner
from conformance.protocol import Request, TaskRequest
from reference.casefile import load_case_file
from reference.golden import generate

torch_missing = pytest.mark.skipif(
    __import__("importlib").util.find_spec("torch") is None, reason="torch is not installed")

SMALL = """
[[case]]
id = "small-mean"
op = "cross_entropy"
dtypes = ["float32", "bfloat16"]
input = [[0.5, -1.25, 2.0], [3.0, 1.0, -2.5]]
target = [2, 0]

[[case]]
id = "small-all-ignored"
op = "cross_entropy"
dtypes = ["float32"]
input = [[0.5, -1.25, 2.0]]
target = [-100]

[[case]]
id = "small-out-of-range"
op = "cross_entropy"
dtypes = ["float32"]
input = [[0.5, -1.25, 2.0]]
target = [3]
"""


def xent(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "conformance.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@torch_missing
def test_run_on_a_small_case_file(tmp_path):
    cases = tmp_path / "small.toml"
    cases.write_text(SMALL)
    out = tmp_path / "out"
    done = xent("run", "--cases", str(cases), "--frameworks", "torch", "--out", str(out))
    assert done.returncode == 0, done.stderr
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["case_id"]) == {"small-mean", "small-all-ignored", "small-out-of-range"}  # default suite replaced
    assert set(df["framework"]) == {"torch"}
    assert set(df["api"]) == {"torch.nn.functional.cross_entropy", "torch.nn.CrossEntropyLoss"}
    mean = df[df["case_id"] == "small-mean"]
    assert (mean["verdict"] == "conforms").all() and len(mean) == 2 * 2 * 2  # apis x dtypes x outputs
    assert (df[df["case_id"] == "small-out-of-range"]["verdict"] == "conforms").all()  # IndexError, expected
    assert df[(df["case_id"] == "small-all-ignored") & (df["output"] == "loss")]["observed_kind"].eq("nan").all()
    html = (out / "report.html").read_text()
    assert "torch.nn.CrossEntropyLoss" in html and "Conformance matrix" in html
    # the counts that matter, per framework, and where the report is; no table of every API
    assert re.search(r"torch \S+ \(local, eager\): \d+ outputs conform, \d+ known divergences, \d+ unexpected", done.stdout)
    assert str(out / "report.html") in done.stdout and "torch.nn.CrossEntropyLoss" not in done.stdout

    rebuilt = xent("report", str(out / "results.parquet"), "--out", str(tmp_path / "again.html"))
    assert rebuilt.returncode == 0 and (tmp_path / "again.html").read_text() == html


def test_malformed_case_file_runs_nothing(tmp_path):
    cases = tmp_path / "bad.toml"
    cases.write_text(SMALL + '\n[[case]]\nid = "broken"\nop = "cross_entropy"\ninput = [[1.0, 2.0]]\ntarget = [[1]]\n')
    out = tmp_path / "out"
    done = xent("run", "--cases", str(cases), "--frameworks", "torch", "--out", str(out))
    assert done.returncode == 2
    assert str(cases) in done.stderr and "case 'broken'" in done.stderr and "field 'target'" in done.stderr
    assert not out.exists()


def test_unknown_framework_is_refused(tmp_path):
    done = xent("run", "--frameworks", "mxnet", "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "mxnet" in done.stderr


def test_generate_user_cases_is_deterministic(tmp_path):
    cases = tmp_path / "small.toml"
    cases.write_text(SMALL)
    for out in ("a", "b"):
        assert xent("generate", "--cases", str(cases), "--out", str(tmp_path / out)).returncode == 0
    for f in (tmp_path / "a").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()


def small_suite(tmp_path, cases: int = 1):
    suite = tmp_path / "golden"
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    generate(load_case_file(path)[:cases], suite, "small")
    return suite


def worker_children(parent: int | None = None):
    """Worker processes whose parent is `parent` (default: this process), from /proc."""
    me = str(parent or os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[1] == me and b"conformance.worker" in cmdline:
            yield int(stat.parent.name)


@torch_missing
@pytest.mark.slow
@pytest.mark.parametrize("after", [1, 4])
def test_a_killed_worker_costs_at_most_the_task_in_flight(tmp_path, after):
    """Killed as a crash or the OOM killer would, after its first task (`after` 1: it may be
    computing the next), or between the two cases (4: the first answered, the second's request
    not yet sent). The second case's request goes to a new worker, or to the dying one, which
    never says it started it: no task of it is anyone's crash."""
    suite = small_suite(tmp_path, cases=2)  # 4 tasks, then 2
    killed, done = [], [0]

    def progress(finished, more):
        done[0] += finished
        if done[0] == after and not killed:
            for server in worker_children():  # torch's fork server, then the worker it forked
                killed.extend([server, *worker_children(server)])
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    (run,) = runner.run([suite], ["torch"], out_dir=tmp_path / "o", progress=progress)
    assert len(killed) == 2
    assert len(run.rows) == (4 + 2) * 2  # every task has its rows
    crashed = {(r.case_id, r.dtype, r.api) for r in run.rows if r.verdict == "crashed"}
    assert len(crashed) <= (1 if after == 1 else 0) and run.restarts == 1
    assert {case_id for case_id, _, _ in crashed} <= {"small-mean"}  # the task in flight, if any
    # -9: killed; -1: a forked worker already gone, whose status went to its fork server
    assert all(re.search(r"exited with code -(9|1) ", r.detail) for r in run.rows if r.verdict == "crashed")
    assert all(r.verdict == "conforms" for r in run.rows if (r.case_id, r.dtype, r.api) not in crashed)


@torch_missing
@pytest.mark.slow
def test_a_worker_says_when_it_started_a_request_so_a_death_before_is_no_tasks_crash(tmp_path):
    suite = small_suite(tmp_path)
    request = Request(str(suite), "small-mean", [TaskRequest("float32", "torch.nn.functional.cross_entropy", "cpu", "eager")] * 3)
    for killed_before in (False, True):
        worker = runner.Worker("torch", tmp_path / "worker.log")
        try:
            assert worker.start(), worker.message
            if killed_before:
                worker.proc.kill()
                worker.send(request)
            else:
                worker.send(request)
                assert worker.receive(60).outputs["loss"].status == "ok"
                worker.proc.kill()
            with pytest.raises(runner.WorkerGone) as gone:
                while True:  # the replies it wrote before it died, then its end
                    worker.receive(60)
            assert gone.value.started is not killed_before
        finally:
            worker.close()


@torch_missing
@pytest.mark.slow
def test_a_hung_task_becomes_crashed_and_the_run_goes_on(tmp_path):
    suite = small_suite(tmp_path)
    runs = runner.run([suite], ["torch", "no_such_framework"], out_dir=tmp_path / "o", timeout=0.0,
                      dtypes={"float32"})
    torch_run, missing = runs
    assert missing.skipped and "no_such_framework" in missing.skipped
    assert len(torch_run.rows) == 2 * 2
    assert all(r.verdict == "crashed" and "hung" in r.detail for r in torch_run.rows)


def test_version():
    done = xent("--version")
    assert done.returncode == 0 and done.stdout.startswith("xent-conformance ")


@torch_missing
@pytest.mark.slow
def test_fail_on_unexpected_and_the_json_summary(tmp_path):
    import json
    cases = tmp_path / "small.toml"
    cases.write_text(SMALL + '\n[[case]]\nid = "inf-row"\nop = "cross_entropy"\ndtypes = ["float32"]\n'
                     'input = [["inf", 0.0, 1.0]]\ntarget = [0]\n')  # torch: the max shift, a known divergence
    empty = tmp_path / "none.toml"
    empty.write_text("cause = []\n")
    args = ["run", "--cases", str(cases), "--frameworks", "torch", "--out", str(tmp_path / "o"),
            "--json", str(tmp_path / "s.json")]
    assert xent(*args).returncode == 0  # a measuring tool by default
    assert xent(*args, "--fail-on", "unexpected").returncode == 0  # the divergence is a known one
    failing = xent(*args, "--expectations", str(empty), "--fail-on", "unexpected")
    assert failing.returncode == 1, failing.stderr  # with no expectations, the max shift is unexpected
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["failed"] is True and summary["frameworks"]["torch (local)"]["unexpected"] > 0


def test_baseline_update_keeps_the_rows_and_leaves_the_reproducers_with_the_run(tmp_path, monkeypatch):
    from conformance import cli, report

    stored = report.read_results(cli.BASELINES_DIR / "default-cpu.parquet")
    run = stored.assign(reproducer=["print('reproduce')\n" if i % 3 == 0 else "" for i in range(len(stored))])
    (tmp_path / "run").mkdir()
    report.write_results(run, tmp_path / "run" / "results.parquet")
    monkeypatch.setattr(cli, "BASELINES_DIR", tmp_path / "baselines")
    assert cli.main(["baseline", "update", str(tmp_path / "run"), "--name", "mine"]) == 0
    written = tmp_path / "baselines" / "mine.parquet"
    assert "reproducer" not in pd.read_parquet(written).columns
    back = report.read_results(written)
    pd.testing.assert_frame_equal(back, stored, check_like=True)


@pytest.mark.parametrize("args", [
    ["run", "--fail-on", "unexpcted"], ["run", "--fail-on", "regression,regresion"], ["run", "--fail-on", ","],
    ["diff", "OLD", "NEW", "--fail-on", "regresion"], ["run", "--drift", "-1"], ["diff", "OLD", "NEW", "--drift", "nan"],
    ["run", "--frameworks", ","], ["run", "--dtypes", "float8"], ["run", "--shard", "3/2"],
])
def test_a_gate_that_cannot_be_read_is_one_line_and_exit_2(tmp_path, capsys, args):
    """A typo in a CI gate must never turn it off: every option value is checked before anything
    runs, and said in one line."""
    from conformance import cli
    args = [str(tmp_path / a) if a in ("OLD", "NEW") else a for a in args]
    args += ["--out", str(tmp_path / "o")] if args[0] == "run" else []
    if "--dtypes" in args:  # argparse's own check: one line too
        with pytest.raises(SystemExit) as e:
            cli.main(args)
        assert e.value.code == 2
    else:
        assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("xent"), err
    assert not (tmp_path / "o").exists()


def test_an_unwritable_out_is_one_line_and_exit_2(tmp_path, capsys):
    from conformance import cli
    blocker = tmp_path / "file"
    blocker.write_text("")
    for out in (blocker / "sub", Path("/proc/forbidden")):
        assert cli.main(["run", "--frameworks", "torch", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"--out {out}: cannot write there" in err, err


def test_diff_takes_a_framework_filter_and_says_when_runs_share_no_case(tmp_path, capsys):
    from conformance import cli, report
    from .test_report import row
    old = tmp_path / "old.parquet"
    report.write_results(report.results_frame([row(case_id="a"), row(case_id="a", framework="jax")]), old)
    new = tmp_path / "new.parquet"
    report.write_results(report.results_frame([row(case_id="a")]), new)
    assert cli.main(["diff", str(old), str(new)]) == 1  # jax's rows are missing
    assert cli.main(["diff", str(old), str(new), "--frameworks", "torch"]) == 0
    assert "1 rows compared" in capsys.readouterr().out
    assert cli.main(["diff", str(old), str(new), "--frameworks", "tensorflow"]) == 2
    assert "no rows of 'tensorflow'" in capsys.readouterr().err
    other = tmp_path / "other.parquet"
    report.write_results(report.results_frame([row(case_id="b")]), other)
    cli.main(["diff", str(new), str(other)])
    assert "share no case" in capsys.readouterr().out


def test_report_elsewhere_prints_only_paths_that_exist(tmp_path, capsys):
    from conformance import cli, report
    from .test_report import row
    (tmp_path / "run").mkdir()
    report.write_results(report.results_frame([row(case_id="a")]), tmp_path / "run" / "results.parquet")
    target = tmp_path / "elsewhere" / "mine.html"
    assert cli.main(["report", str(tmp_path / "run"), "--out", str(target)]) == 0
    out = capsys.readouterr().out
    printed = re.findall(r"^(?:report|results|reproducers):\s+(\S+)", out, re.M)
    assert str(target) in printed and printed and all(Path(p.rstrip("/")).exists() for p in printed), out


@torch_missing
@pytest.mark.slow
def test_json_differences_are_per_runtime_and_documented(tmp_path):
    """Two runtimes of one framework: each its own differences count (not the framework's)."""
    import json
    cases = tmp_path / "small.toml"
    cases.write_text('[[case]]\nid = "inf-row"\nop = "cross_entropy"\ndtypes = ["float32"]\n'
                     'input = [["inf", 0.0, 1.0]]\ntarget = [0]\n')
    done = xent("run", "--cases", str(cases), "--frameworks", "torch", "--out", str(tmp_path / "o"),
                "--runtime", "local", "--runtime", f"second={sys.executable}", "--json", str(tmp_path / "s.json"))
    assert done.returncode == 0, done.stderr
    per = json.loads((tmp_path / "s.json").read_text())["frameworks"]
    df = pd.read_parquet(tmp_path / "o" / "results.parquet")
    diverging = df[~df["verdict"].isin(["conforms", "unsupported"])]
    for runtime in ("local", "second"):
        assert per[f"torch ({runtime})"]["differences"] == int((diverging["runtime"] == runtime).sum()) > 0
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert '"differences"' in readme


@torch_missing
def test_a_mode_that_cannot_run_here_is_said_on_the_terminal_and_in_the_json_summary(tmp_path, setuptools_hidden):
    import json
    cases = tmp_path / "small.toml"
    cases.write_text(SMALL)
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--cases", str(cases), "--frameworks", "torch",
                           "--modes", "eager,compile", "--out", str(tmp_path / "o"), "--json", str(tmp_path / "s.json")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "skipped torch (local) mode compile: it cannot run here: ModuleNotFoundError: No module named 'setuptools'" \
        in done.stdout
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["skipped"] == {"torch (local)": {"compile": "cannot run here: ModuleNotFoundError: No module named "
                                                                "'setuptools'"}}
    assert set(summary["frameworks"]["torch (local)"]["modes"]) == {"eager"}
