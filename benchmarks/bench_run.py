"""A whole `xent run` of the default suite (all three frameworks) against the time this machine
takes to import torch, tensorflow, keras, jax and optax in one process, side by side in one run:
each round imports, runs with a cold JAX compilation cache, runs again with it warm, and imports
again (the ratios take the mean of the two imports, so load that comes or goes during a round
shows as a gap between them). Prints times, ratios and the load average: the machine may be
shared.

With --jax-floor, each round also runs JAX's tasks in one process with no runner at all
(benchmarks/in_process.py) with a cold compilation cache: what jit's tracing and XLA's compiles
of the suite's distinct programs cost by themselves, a floor no runner can go below."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd, env=None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--jax-floor", action="store_true", help="also time JAX's tasks in one process, cold")
    args = parser.parse_args()
    imports_cmd = [sys.executable, "-c", "import torch, tensorflow, keras, jax, optax"]
    for i in range(args.rounds):
        load = os.getloadavg()[0]
        before = timed(imports_cmd)
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, XENT_JAX_CACHE=str(Path(tmp) / "jax-cache"))
            first = timed([sys.executable, "-m", "conformance.cli", "run", "--out", str(Path(tmp) / "a")], env)
            second = timed([sys.executable, "-m", "conformance.cli", "run", "--out", str(Path(tmp) / "b")], env)
            floor = timed([sys.executable, str(ROOT / "benchmarks" / "in_process.py"), "jax"],
                          dict(env, XENT_JAX_CACHE=str(Path(tmp) / "jax-floor"))) if args.jax_floor else None
        after = timed(imports_cmd)
        imports = (before + after) / 2
        print(f"round {i + 1} (load average {load:.1f} before, {os.getloadavg()[0]:.1f} after, "
              f"on {os.cpu_count()} CPUs)")
        print(f"  imports of torch, tensorflow, keras, jax, optax: {before:.1f} s before, {after:.1f} s after")
        print(f"  xent run, first (cold JAX cache): {first:.1f} s = {first / imports:.1f}x the imports (target 5x)")
        print(f"  xent run, second (warm JAX cache): {second:.1f} s = {second / imports:.1f}x the imports (target 3x)",
              flush=True)
        if floor is not None:
            print(f"  JAX's tasks alone in one process, no runner, cold JAX cache: {floor:.1f} s = "
                  f"{floor / imports:.1f}x the imports", flush=True)


if __name__ == "__main__":
    main()
