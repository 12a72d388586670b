"""A framework's default-suite tasks run in one process with no runner: import the framework,
decode each case's inputs as the worker does, then prepare, execute and restore every task.
The baseline the runner's cost is measured against (bench_runner.py, bench_run.py). Run as
`python benchmarks/in_process.py FRAMEWORK`: prints the number of tasks and the seconds."""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(framework: str) -> None:
    start = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from conformance.adapters import load
    from conformance.adapters.base import prepare, restore, unsupported_reason
    from conformance.worker import inputs
    from reference.golden import load_suite

    adapter = load(framework)
    devices = adapter.devices()  # once, as the worker asks in its hello
    tasks = 0
    for case in load_suite(ROOT / "cases" / "golden" / "default"):
        arrays = inputs(case, case.dtypes)
        for dtype in case.dtypes:
            for api in adapter.apis:
                if unsupported_reason(api, case):
                    continue
                for device in devices:
                    out = adapter.execute(api, prepare(api, case, arrays, dtype), device.id)
                    {o: v if isinstance(v, BaseException) else restore(api, case, o, v) for o, v in out.items()}
                    tasks += 1
    print(tasks, time.perf_counter() - start)


if __name__ == "__main__":
    main(sys.argv[1])
