"""benchmarks/gpu_check.sh, the prepared device check, as a dry run on the CPU (--devices cpu): the
same steps, the CPU in the GPU's place, so the script a short GPU slot depends on cannot rot."""
import json
import os
import subprocess
import sys

import pytest

from conformance.adapters import missing_module

from .conftest import ROOT


@pytest.mark.slow
@pytest.mark.skipif(any(missing_module(f) for f in ("torch", "jax")), reason="needs torch and jax")
def test_the_device_check_runs_dry_on_the_cpu(tmp_path):
    out = tmp_path / "check"
    # torch.compile on a hundredth of the suite (the check's default, a twentieth, compiles cold for a minute here)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--devices", "cpu", "--out", str(out),
                           "--compile-shard", "1/100"],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = (out / "summary.txt").read_text()
    for step in ("cpu", "device", "diff-torch", "diff-jax", "cpu-compile", "device-compile", "diff-torch-compile"):
        assert f"{step}: exit 0" in summary, summary
    for name in ("torch", "jax", "torch-compile"):
        diff = json.loads((out / f"diff-{name}.json").read_text())
        assert diff["compared"] > 0 and diff["counts"]["missing"] == 0 and diff["counts"]["new"] == 0
        assert (out / f"diff-{name}.html").exists()
    for side in ("cpu-compile", "device-compile"):  # the compiled mode on both sides, nothing else
        (torch_run,) = json.loads((out / f"{side}.json").read_text())["frameworks"].values()
        assert set(torch_run["modes"]) == {"compile"} and torch_run["unexpected"] == 0, torch_run
    assert (out / "cpu" / "report.html").exists() and (out / "device" / "results.parquet").exists()


def test_the_device_check_says_what_it_takes():
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--devices", "tpu"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--devices cuda or cpu" in done.stderr
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--compile-shard", "all"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--compile-shard K/N or none" in done.stderr
