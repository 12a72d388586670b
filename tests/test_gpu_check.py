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
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--devices", "cpu", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = (out / "summary.txt").read_text()
    for step in ("cpu", "device", "diff-torch", "diff-jax"):
        assert f"{step}: exit 0" in summary, summary
    for framework in ("torch", "jax"):
        diff = json.loads((out / f"diff-{framework}.json").read_text())
        assert diff["compared"] > 0 and diff["counts"]["missing"] == 0 and diff["counts"]["new"] == 0
        assert (out / f"diff-{framework}.html").exists()
    assert (out / "cpu" / "report.html").exists() and (out / "device" / "results.parquet").exists()


def test_the_device_check_says_what_it_takes():
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--devices", "tpu"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--devices cuda or cpu" in done.stderr
