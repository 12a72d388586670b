"""Real runs of small suites through the installed frameworks (slow: workers import them)."""
import importlib.util

import pytest

from conformance import runner
from conformance.adapters import FRAMEWORKS, missing_module
from conformance.expectations import load_expectations
from conformance.reclassify import reclassify
from conformance.suites import SUITES
from conformance.report import read_run, results_frame
from reference.casefile import parse_cases
from reference.golden import generate

pytestmark = pytest.mark.slow
INSTALLED = [f for f in FRAMEWORKS if missing_module(f) is None]


def suite(tmp_path, tables):
    specs = parse_cases(tables, "test")
    return generate(specs, tmp_path / "golden", "user").parent


def test_an_infinite_logit_with_a_class_index_target_is_named_by_the_max_shift(tmp_path):
    """[inf, 0, 1], target 0: every framework's NaN is explained by subtracting the row maximum
    (inf - inf), never by 0 * inf: nothing multiplies a zero coefficient on that path."""
    golden = suite(tmp_path, [{"id": "inf-row", "op": "cross_entropy", "input": [["inf", "0", "1"]],
                               "target": [0], "reduction": "none", "dtypes": ["float32"]}])
    runs = runner.run([golden], INSTALLED, out_dir=tmp_path / "o", expectations=load_expectations())
    rows = [r for run in runs for r in run.rows if r.verdict != "unsupported"]
    assert {r.framework for r in rows} == set(INSTALLED) and rows
    for r in rows:
        assert "zero_times_inf_nan" not in r.variants and "zero_times_inf_nan" not in r.detail
        if r.output == "loss":  # the limit is 0; NaN is the max shift's
            assert r.verdict in ("variant", "special_mismatch"), (r.api, r.verdict, r.detail)
        if r.verdict == "variant":
            assert "max_shift_inf_nan" in r.variants.split(",") and r.known == "max-shift-inf-minus-inf"


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_reclassifying_a_stored_run_gives_the_fresh_run(tmp_path):
    golden = suite(tmp_path, [
        {"id": "w-mean", "op": "cross_entropy", "input": [["0.5", "-1.25", "2"], ["3", "1", "-2.5"]],
         "target": [2, 0], "weight": ["1", "4", "0.25"], "dtypes": ["float32", "bfloat16"]},
        {"id": "oob", "op": "cross_entropy", "input": [["0.5", "-1.25", "2"]], "target": [3], "dtypes": ["float32"]},
        {"id": "inf-row", "op": "log_softmax", "input": [["inf", "0", "1"]], "dtypes": ["float16"]},
    ])
    expectations = load_expectations()
    (run,) = runner.run([golden], ["torch"], out_dir=tmp_path / "o", expectations=expectations)
    fresh = results_frame(run.rows)
    again_run = reclassify(fresh, {"golden": golden}, expectations)
    again = again_run.rows
    columns = ["case_id", "api", "dtype", "output", "verdict", "detail", "variants", "known", "max_ulp"]
    assert fresh[columns].fillna(-1).equals(again[columns].fillna(-1))
    # and records, as the run did, which entries explained its rows
    assert again_run.info.expectations == {"torch (local)": {"used": run.used, "witnessed": run.witnessed}}
    assert set(fresh["verdict"]) >= {"conforms", "variant"}  # the max shift, classified from stored bits


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_a_runtime_under_a_second_interpreter_runs_end_to_end(tmp_path):
    """A second virtual environment (its own interpreter and prefix) that sees this one's
    packages through a .pth file: the worker starts there, finds the project's code through
    the runtime's code path, and its rows carry the runtime's name."""
    import site
    import subprocess
    import sys

    from conformance import envs
    from conformance.runner import RuntimeSpec

    env = tmp_path / "second"
    subprocess.run([*envs._uv(), "venv", "--quiet", "--python", sys.executable, str(env)], check=True)
    (next((env / "lib").glob("python3*/site-packages")) / "parent.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")
    python = str(env / "bin" / "python")
    golden = suite(tmp_path, [{"id": "plain", "op": "cross_entropy", "input": [["0.5", "-1.25", "2"]],
                               "target": [2], "dtypes": ["float32"]}])
    runtimes = [RuntimeSpec("second", python), RuntimeSpec("local", sys.executable)]
    runs = runner.run([golden], ["torch"], out_dir=tmp_path / "o", runtimes=runtimes)
    assert [r.runtime for r in runs] == ["second", "local"] and not any(r.skipped for r in runs)
    second = runs[0].rows
    assert second and {r.runtime for r in second} == {"second"} and all(r.verdict == "conforms" for r in second)
    assert (tmp_path / "o" / "worker-second-torch.log").exists()
    assert envs.resolve(f"second={python}") == RuntimeSpec("second", python)
    with pytest.raises(envs.EnvError):
        envs.resolve("nothing-by-this-name")


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_shards_merged_equal_one_run_row_for_row(tmp_path):
    import subprocess
    import sys

    import pandas as pd
    tables = [{"id": f"c{i}", "op": "cross_entropy", "input": [["0.5", "-1.25", "2"], ["inf", "0", "1"]],
               "target": [i % 3, 0], "reduction": "none", "dtypes": ["float32"]} for i in range(7)]
    cases = tmp_path / "c.toml"
    cases.write_text("".join("[[case]]\n" + "".join(f"{k} = {json_value(v)}\n" for k, v in t.items()) for t in tables))

    def xent(*args):
        done = subprocess.run([sys.executable, "-m", "conformance.cli", *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done

    xent("run", "--cases", str(cases), "--frameworks", "torch", "--out", str(tmp_path / "whole"))
    for k in (1, 2, 3):
        xent("run", "--cases", str(cases), "--frameworks", "torch", "--shard", f"{k}/3", "--out", str(tmp_path / f"s{k}"))
    xent("merge", *(str(tmp_path / f"s{k}") for k in (1, 2, 3)), "--out", str(tmp_path / "merged"))
    key = ["case_id", "api", "device", "dtype", "output"]
    whole = pd.read_parquet(tmp_path / "whole" / "results.parquet").sort_values(key).reset_index(drop=True)
    merged = pd.read_parquet(tmp_path / "merged" / "results.parquet").sort_values(key).reset_index(drop=True)
    stale = {name: read_run(tmp_path / name / "results.parquet").info.stale for name in ("whole", "merged")}
    shard_sizes = [len(pd.read_parquet(tmp_path / f"s{k}" / "results.parquet")) for k in (1, 2, 3)]
    assert sum(shard_sizes) == len(whole) and min(shard_sizes) > 0
    assert whole.fillna(-1).equals(merged.fillna(-1))
    assert stale["merged"] == stale["whole"]


def json_value(v):
    import json
    return json.dumps(v)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_jax_programs_are_kept_in_the_user_cache_that_xent_cache_names(tmp_path, monkeypatch):
    golden = suite(tmp_path, [{"id": "small", "op": "log_softmax", "input": [["0.5", "-1", "2"]],
                               "dtypes": ["float32"]}])
    monkeypatch.delenv("XENT_JAX_CACHE", raising=False)
    monkeypatch.setenv("XENT_CACHE", str(tmp_path / "cache"))
    (run,) = runner.run([golden], ["jax"], out_dir=tmp_path / "o")
    assert run.rows and not run.skipped
    assert list((tmp_path / "cache" / "jax").iterdir())  # the compiled program, for the next run


def test_workers_per_framework_share_the_cpus_where_a_lane_is_a_fork():
    assert runner.lanes_for(["torch"], 1, cpus=2) == {"torch": 2}
    assert runner.lanes_for(["torch", "jax"], 2, cpus=2) == {"torch": 1, "jax": 1}
    assert runner.lanes_for(["jax"], 1, cpus=8) == {"jax": 1}  # a second JAX worker would import JAX again


@pytest.mark.slow
def test_two_workers_of_a_framework_give_the_rows_one_gives(tmp_path):
    if missing_module("torch"):
        pytest.skip("torch is not installed")
    rows = {}
    for lanes in (1, 2):
        (run,) = runner.run([SUITES["default"][1]], ["torch"], out_dir=tmp_path / str(lanes), shard=(1, 8),
                            expectations=load_expectations(), lanes=lanes)
        assert not run.skipped and not run.error and run.done == run.planned
        rows[lanes] = sorted((r.case_id, r.api, r.dtype, r.output, r.verdict, r.known, bytes(r.observed_bits or b""))
                             for r in run.rows)
    assert rows[1] == rows[2] and rows[1]
