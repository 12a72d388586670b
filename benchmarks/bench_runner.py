"""The runner's cost: `xent run --frameworks torch` on the default suite against the same tasks
run in one process with no runner (benchmarks/in_process.py, in the environment the runner gives
its workers: runner.WORKER_ENV), measured side by side: `--rounds` pairs, each pair back to
back, so every ratio compares two runs under the same load. Prints each pair, the median ratio and the load
average (the machine may be shared)."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd, env=None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True, env=env)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from conformance.runner import WORKER_ENV

    worker_env = {**WORKER_ENV, **os.environ}
    load_before = os.getloadavg()[0]
    ratios = []
    for i in range(args.rounds):
        in_process, stdout = timed([sys.executable, str(ROOT / "benchmarks" / "in_process.py"), "torch"], worker_env)
        with tempfile.TemporaryDirectory() as out:
            runner, _ = timed([sys.executable, "-m", "conformance.cli", "run", "--frameworks", "torch", "--out", out])
        ratios.append(runner / in_process)
        print(f"round {i + 1}: {stdout.split()[0]} supported torch tasks: in one process {in_process:.1f} s, "
              f"xent run {runner:.1f} s: {runner / in_process:.2f}x", flush=True)
    print(f"median ratio xent run / in one process: {statistics.median(ratios):.2f}x "
          f"(target 1.5x); load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
          f"on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
