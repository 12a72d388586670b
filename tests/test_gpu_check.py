"""benchmarks/gpu_check.sh, the prepared device check, as a dry run on the CPU (--devices cpu) through
benchmarks/gpu_slot.sh, which a GPU slot runs: the same steps, the CPU in the GPU's place, so the
scripts a short GPU slot depends on cannot rot."""
import json
import os
import subprocess
import sys
import tarfile

import pytest

from conformance.adapters import missing_module

from .conftest import ROOT


@pytest.mark.slow
@pytest.mark.skipif(any(missing_module(f) for f in ("torch", "jax")), reason="needs torch and jax")
def test_the_device_check_runs_dry_on_the_cpu(tmp_path):
    """Through benchmarks/gpu_slot.sh, as the device call runs it: the carried wheels (fetched by
    gpu_wheels.sh for this Python) installed beside this environment, the check, one packed file."""
    wheels, out, unpacked = tmp_path / "wheels", tmp_path / "out", tmp_path / "unpacked"
    env = {**os.environ, "PYTHON": sys.executable, "XENT_GPU_WHEELS": str(wheels)}
    fetched = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_wheels.sh"), "%d.%d" % sys.version_info[:2]],
                             capture_output=True, text=True, timeout=300, env=env)
    if fetched.returncode != 0:
        pytest.skip(f"gpu_wheels.sh could not fetch the wheels (no package registry?): {fetched.stderr[-300:]}")
    out.mkdir()
    unpacked.mkdir()
    # torch.compile on a hundredth of the suite (the check's default, a twentieth, compiles cold for a minute here)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_slot.sh"), "--devices", "cpu",
                           "--compile-shard", "1/100"],
                          capture_output=True, text=True, timeout=900, env={**env, "OUT": str(out)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu-check.log", "gpu-check.tgz", "summary.txt"]
    with tarfile.open(out / "gpu-check.tgz") as packed:
        packed.extractall(unpacked, filter="data")
    check = unpacked / "gpu-check"
    summary = (check / "summary.txt").read_text()
    assert summary == (out / "summary.txt").read_text()
    for step in ("cpu", "device", "diff-torch", "diff-jax", "cpu-compile", "device-compile", "diff-torch-compile"):
        assert f"{step}: exit 0" in summary, summary
    for name in ("torch", "jax", "torch-compile"):
        diff = json.loads((check / f"diff-{name}.json").read_text())
        assert diff["compared"] > 0 and diff["counts"]["missing"] == 0 and diff["counts"]["new"] == 0
        assert (check / f"diff-{name}.html").exists()
    for side in ("cpu-compile", "device-compile"):  # the compiled mode on both sides, nothing else
        (torch_run,) = json.loads((check / f"{side}.json").read_text())["frameworks"].values()
        assert set(torch_run["modes"]) == {"compile"} and torch_run["unexpected"] == 0, torch_run
    assert (check / "cpu" / "report.html").exists() and (check / "device" / "results.parquet").exists()


def test_the_device_check_says_what_it_takes():
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--devices", "tpu"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--devices cuda or cpu" in done.stderr
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--compile-shard", "all"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--compile-shard K/N or none" in done.stderr
