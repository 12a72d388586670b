"""The runner's cost: `xent run --frameworks torch` on the default suite against the same tasks
run in one process with no runner (import torch, then prepare, execute and restore every task),
measured side by side in one run. Prints both times and their ratio."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

IN_PROCESS = """
import time
start = time.perf_counter()
from conformance.adapters import load
from conformance.adapters.base import prepare, restore, unsupported_reason
from reference.golden import load_suite
adapter = load("torch")
tasks = 0
for case in load_suite("cases/golden/default"):
    arrays = case.arrays()
    for dtype in case.dtypes:
        for api in adapter.apis:
            if unsupported_reason(api, case):
                continue
            for device in adapter.devices():
                out = adapter.execute(api, prepare(api, case, arrays, dtype), device.id)
                {o: v if isinstance(v, BaseException) else restore(api, case, o, v) for o, v in out.items()}
                tasks += 1
print(tasks, time.perf_counter() - start)
"""


def main() -> None:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", IN_PROCESS], cwd=ROOT, capture_output=True, text=True, check=True)
    in_process = time.perf_counter() - start
    tasks = done.stdout.split()[0]
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--frameworks", "torch", "--out", out],
                       cwd=ROOT, capture_output=True, check=True)
        runner = time.perf_counter() - start
    print(f"torch, default suite, {tasks} supported tasks: in one process {in_process:.1f} s, "
          f"xent run {runner:.1f} s: {runner / in_process:.2f}x")


if __name__ == "__main__":
    main()
