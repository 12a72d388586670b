"""A whole `xent run` of the default suite (all three frameworks) against the time this machine
takes to import torch, tensorflow, keras, jax and optax in one process, side by side in one run;
twice, the second with JAX's persistent compilation cache warm. Prints times and ratios."""
from __future__ import annotations

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
    imports = timed([sys.executable, "-c", "import torch, tensorflow, keras, jax, optax"])
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, XENT_JAX_CACHE=str(Path(tmp) / "jax-cache"))
        first = timed([sys.executable, "-m", "conformance.cli", "run", "--out", str(Path(tmp) / "a")], env)
        second = timed([sys.executable, "-m", "conformance.cli", "run", "--out", str(Path(tmp) / "b")], env)
    print(f"imports of torch, tensorflow, keras, jax, optax: {imports:.1f} s")
    print(f"xent run, first (cold JAX cache): {first:.1f} s = {first / imports:.1f}x the imports")
    print(f"xent run, second (warm JAX cache): {second:.1f} s = {second / imports:.1f}x the imports")


if __name__ == "__main__":
    main()
