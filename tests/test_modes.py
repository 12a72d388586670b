"""Execution modes: the house (identity, protocol, mode tables) and every mode of every installed
framework on a sample of the default suite that holds every op, dtype, reduction and target kind."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conformance import diff, report, repro, runner
from conformance.adapters import FRAMEWORKS, default_mode, missing_module
from conformance.contract import SAMPLE  # every op, target kind and reduction; an out-of-range label
from conformance.expectations import load_expectations
from conformance.protocol import (ApiInfo, DeviceInfo, Hello, ModeInfo, Output, Recipe, Reply, Request,
                                  TaskRequest)
from conformance.results import IDENTITY, observed_from_columns
from conformance.suites import SUITES
from conformance.verdicts import CONFORMS, UNSUPPORTED
from reference.golden import load_suite

from .test_report import row as diff_row
from .test_repro import RUN_EACH, SEPARATOR, _hex

INSTALLED = [f for f in FRAMEWORKS if missing_module(f) is None]


def test_the_protocol_messages_read_back_as_they_were_written():
    hello = Hello("f", "1.0", {"f": "1.0"}, [DeviceInfo("cpu", "cpu", "a CPU")],
                  [ApiInfo("a", "log_softmax", "x", "last", False, "weight", Recipe("s", "r", "c", "h"))],
                  [ModeInfo("eager", "op by op", "program"), ModeInfo("compile", "compiled", "c(program)", "isa")],
                  ["ValueError"])
    assert Hello.from_json(json.loads(json.dumps(hello.to_json()))) == hello
    request = Request("/suite", "case", [TaskRequest("float32", "a", "cpu", "compile")])
    assert Request.from_json(json.loads(json.dumps(request.to_json()))) == request
    reply = Reply({"loss": Output("ok", "float32", [2], 8, data=b"12345678"), "grad": Output("raised", type="E")})
    back = Reply.from_json(json.loads(json.dumps(reply.to_json())))
    assert back.outputs["loss"].data == b"" and "data" not in reply.to_json()["outputs"]["loss"]  # bits travel apart
    assert back.outputs["grad"] == reply.outputs["grad"] and back.outputs["loss"].nbytes == 8


def test_a_framework_runs_its_default_mode_unless_asked():
    assert runner.chosen_modes(["eager", "compile"], None) == ["eager"]
    assert runner.chosen_modes(["jit", "eager"], ("all",)) == ["jit", "eager"]
    assert runner.chosen_modes(["eager", "function", "xla"], ("xla", "eager", "compile")) == ["eager", "xla"]
    assert runner.chosen_modes(["jit", "eager"], ("compile",)) == []


def test_a_results_file_without_modes_reads_as_each_frameworks_default(tmp_path):
    df = report.results_frame([diff_row(framework="torch"), diff_row(framework="jax", case_id="b")]).drop(columns="mode")
    df.to_parquet(tmp_path / "old.parquet")
    back = report.read_results(tmp_path / "old.parquet")
    assert dict(zip(back["framework"], back["mode"])) == {"torch": "eager", "jax": "jit"}
    assert not back.duplicated(IDENTITY).any()


def test_a_cause_may_be_scoped_by_mode(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text('[[cause]]\nid = "x"\nframeworks = ["torch"]\nverdicts = ["raised"]\nmodes = ["compile"]\n'
                    'reason = "r"\nevidence = "https://example.org/x"\n')
    (entry,) = load_expectations(path, FRAMEWORKS)
    row = {**vars(diff_row(verdict="raised")), "params": "{}"}
    assert entry.explains({**row, "mode": "compile"}) and not entry.explains({**row, "mode": "eager"})


def test_a_mode_diff_names_what_raises_in_one_mode_and_returns_in_the_other():
    eager = report.results_frame([diff_row(case_id="a", mode="eager", verdict="conforms", observed_dtype="",
                                           observed_bits=b"", error_type="IndexError"),
                                  diff_row(case_id="b", mode="eager")])
    compiled = report.results_frame([diff_row(case_id="a", mode="compile", verdict="no_error"),
                                     diff_row(case_id="b", mode="compile")])
    old, new = eager.assign(mode="*"), compiled.assign(mode="*")
    assert diff.compare(old, new, across=True).counts()["raises"] == 1
    assert diff.compare(old, new).counts()["raises"] == 0  # a version diff keeps its own classes


def test_the_sample_covers_every_op_dtype_reduction_and_target_kind():
    cases = load_suite(SUITES["default"][1])
    chosen = [c for c in cases if c.id in SAMPLE]
    assert len(chosen) == len(SAMPLE)

    def kinds(group):
        return {(c.op, d) for c in group for d in c.dtypes}, {c.params.get("reduction") for c in group}, \
            {c.params.get("target_kind") for c in group}

    ops_dtypes, reductions, targets = kinds(chosen)
    all_ops_dtypes, all_reductions, all_targets = kinds(cases)
    assert {op for op, _ in ops_dtypes} == {op for op, _ in all_ops_dtypes}
    assert {d for _, d in ops_dtypes} == {d for _, d in all_ops_dtypes}
    assert reductions == all_reductions and targets == all_targets


@pytest.fixture(scope="module")
def every_mode(tmp_path_factory):
    out = tmp_path_factory.mktemp("modes")
    runs = runner.run([SUITES["default"][1]], INSTALLED, out_dir=out, expectations=load_expectations(),
                      case_ids=SAMPLE, modes=("all",))
    df = report.results_frame([row for r in runs for row in r.rows])
    repro.write_files(df, out)
    return out, runs, df


@pytest.mark.slow
def test_every_mode_of_every_framework_runs_the_sample_with_no_unexpected_divergence(every_mode):
    _, runs, df = every_mode
    for r in runs:
        assert not r.skipped and not r.error, (r.framework, r.skipped, r.error)
        assert r.modes == r.available_modes, r.framework
        assert set(df.loc[df["framework"] == r.framework, "mode"]) == set(r.modes)
    assert not df.duplicated(IDENTITY).any()
    diverging = df[~df["verdict"].isin([CONFORMS, UNSUPPORTED])]
    unexpected = diverging[diverging["known"] == ""]
    assert unexpected.empty, unexpected[["framework", "mode", "case_id", "api", "dtype", "output", "verdict",
                                         "detail"]].head(20).to_string()
    # a compiled mode records what decides its numbers beside the device
    compiled = df[(df["framework"] == "torch") & (df["mode"] == "compile") & (df["device"] != "-")]
    assert compiled.empty or compiled["device_name"].str.contains("inductor").all()


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_reproducer_of_another_mode_runs_the_call_that_way_and_prints_the_bits_observed(every_mode, framework):
    if missing_module(framework):
        pytest.skip(f"{framework} is not installed")
    out, runs, df = every_mode
    if len(next(r for r in runs if r.framework == framework).available_modes) == 1:
        pytest.skip(f"{framework} has one mode")
    rows = df[(df["framework"] == framework) & (df["mode"] != default_mode(framework))
              & ~df["verdict"].isin([CONFORMS, UNSUPPORTED]) & (df["observed_dtype"] != "")]
    assert not rows.empty
    task = rows.drop_duplicates("reproducer").iloc[0]
    path = out / repro.file_name(task)
    assert f"--{task['mode']}" in path.name and f"mode {task['mode']}" in task["reproducer"]
    done = subprocess.run([sys.executable, "-c", RUN_EACH, str(path)], capture_output=True, text=True, timeout=300,
                          cwd=out)
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout.split(SEPARATOR)[1]
    for _, row in df[(df["framework"] == framework) & (df["reproducer"] == task["reproducer"])].iterrows():
        observed = observed_from_columns(row)
        section = text.split(f"{row['output']}:\n", 1)[1]
        for value in _hex(observed.bits, observed.dtype)[:24]:
            assert f"({value})" in section or value in section, (path, row["output"], value)



@pytest.mark.skipif("torch" not in INSTALLED, reason="torch is not installed")
def test_a_fork_server_prepares_the_modes_the_run_asks_for_once(tmp_path):
    """torch's compile mode imports its compiler in the fork server, so each forked worker
    starts with it loaded; a run of the default mode alone pays for nothing it does not use."""
    for modes, expected in [(("compile",), ["compile"]), (None, ["eager"]), (("all",), ["eager", "compile", "decomp"])]:
        worker = runner.Worker("torch", tmp_path / "worker.log", modes=modes)
        worker.launch()
        try:
            assert worker.ready(), worker.message
            assert worker.server.preloaded == expected
        finally:
            worker.close()


@pytest.mark.skipif("torch" not in INSTALLED, reason="torch is not installed")
@pytest.mark.parametrize("forks", [True, False])
def test_a_worker_prepares_only_the_modes_the_run_asks_for(tmp_path, forks, setuptools_hidden):
    """compile's settings (Inductor's vector ISA, test builds loaded in subprocesses) cost seconds
    a process: every worker of an eager run paid them, a worker replacing a fatal one too. With
    setuptools hidden, preparing compile fails: its failure shows whether it was prepared."""
    for modes, prepared in [(None, False), (("eager",), False), (("eager", "compile"), True)]:
        worker = runner.Worker("torch", tmp_path / "worker.log", forks=forks, modes=modes)
        try:
            assert worker.start(), worker.message
            compile_mode = {m.name: m for m in worker.hello.modes}["compile"]
            assert bool(compile_mode.unavailable) == prepared, (modes, compile_mode)
            assert "No module named 'setuptools'" in compile_mode.unavailable or not prepared
        finally:
            worker.close()


@pytest.mark.skipif("torch" not in INSTALLED, reason="torch is not installed")
@pytest.mark.parametrize("forks", [True, False])
def test_a_mode_that_cannot_set_up_here_is_skipped_with_its_reason_and_the_others_run(tmp_path, monkeypatch, forks,
                                                                                     setuptools_hidden):
    """torch 2.9 and older import setuptools for their compiler without requiring it: in an
    environment without it, compile cannot run, and eager must (it used to skip all of torch)."""
    monkeypatch.setattr(runner, "_forks", lambda framework: forks)
    suite = SUITES["default"][1]
    ask = runner.run([suite], ["torch"], out_dir=tmp_path / "a", case_ids={"ls-ordinary"}, modes=("eager", "compile"))
    (found,) = ask
    assert not found.skipped and found.modes == ["eager"], found.skipped
    assert "No module named 'setuptools'" in found.unavailable["compile"]
    assert {r.mode for r in found.rows} == {"eager"} and found.done == found.planned > 0
    (only,) = runner.run([suite], ["torch"], out_dir=tmp_path / "b", case_ids={"ls-ordinary"}, modes=("compile",))
    assert not only.rows and only.skipped.startswith("mode compile cannot run here: ModuleNotFoundError")
