"""Each execution mode's cost against the framework's eager run, side by side in one run: for each
framework, `xent run --frameworks F --modes eager` (its eager mode: `eager` for every framework that
has one), then every other mode twice, cold (empty compiler caches: Inductor's FX graph and
AOTAutograd caches, JAX's persistent cache, all in a fresh folder) and warm (the same folder again).
TensorFlow keeps no compiled graph between processes: its cold and warm runs differ only by the
operating system's file cache. Each run is a whole `xent run` (worker start, classification,
report) of the same cases; prints seconds and ratios, and the load average (the machine may be
shared).

  python benchmarks/bench_modes.py                      # the default suite, every framework
  python benchmarks/bench_modes.py --shard 1/10 --frameworks torch --modes decomp
  python benchmarks/bench_modes.py --frameworks torch --modes compile --cache ~/.cache/xent-conformance
      # the whole suite's warm runs, on caches a run filled (a cold one takes an hour)
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = {"torch": ["compile", "decomp"], "tensorflow": ["function", "xla"], "jax": ["jit"]}


def timed(args: list[str], cache: Path, out: Path) -> float:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache / "inductor"), XENT_JAX_CACHE=str(cache / "jax"))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", *args, "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"xent run {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frameworks", default=",".join(MODES))
    parser.add_argument("--shard", help="K/N: a part of the default suite (xent run --shard)")
    parser.add_argument("--modes", help="only these modes (comma-separated), besides eager")
    parser.add_argument("--cache", type=Path, help="the compiler caches in this folder (inductor/, jax/), not in "
                                                   "fresh ones: a 'cold' run is then only as cold as it")
    args = parser.parse_args()
    sample = ["--shard", args.shard] if args.shard else []
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; cases: "
          f"{'shard ' + args.shard if args.shard else 'the default suite'}")
    print(f"{'framework':<11} {'mode':<9} {'cold s':>8} {'warm s':>8} {'cold/eager':>11} {'warm/eager':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for framework in args.frameworks.split(","):
            base = ["--frameworks", framework, *sample]
            cache = args.cache or Path(tmp) / framework
            # the eager run twice too: its second run is the one the modes' warm runs compare with
            eager_cold = timed([*base, "--modes", "eager"], cache, Path(tmp) / "out")
            eager = timed([*base, "--modes", "eager"], cache, Path(tmp) / "out")
            print(f"{framework:<11} {'eager':<9} {eager_cold:>8.1f} {eager:>8.1f} {eager_cold / eager:>10.2f}x "
                  f"{1:>10.2f}x", flush=True)
            for mode in (m for m in MODES[framework] if not args.modes or m in args.modes.split(",")):
                fresh = args.cache or Path(tmp) / f"{framework}-{mode}"
                cold = timed([*base, "--modes", mode], fresh, Path(tmp) / "out")
                warm = timed([*base, "--modes", mode], fresh, Path(tmp) / "out")
                print(f"{framework:<11} {mode:<9} {cold:>8.1f} {warm:>8.1f} {cold / eager:>10.2f}x {warm / eager:>10.2f}x",
                      flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
