"""How fast `xent discover` searches, per framework, against the framework's own call time on the
same inputs, side by side in one run.

For each framework, in its default mode: the same examples of every op it has (drawn once, with
a fixed seed, by the search's strategies) are
  - evaluated the way the search evaluates them (`Probe.rows`: the reference, the golden file,
    the worker round trip, the classifier and the expectations), and
  - run in this process with nothing around the calls (`Adapter.execute` on the prepared arrays,
    every API of the op, the reference's work done beforehand and not timed),
and a whole search (`search_op` with Hypothesis, targeting and the relations) is timed for its
examples per second. Prints per framework: examples per second of the search, seconds per
example of both evaluations (the framework's first call on a new graph, which under jit traces and
compiles it, and a repeated one), and their ratios (what the search costs per framework call).

  python benchmarks/bench_discover.py [--frameworks torch,tensorflow,jax] [--examples 30]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def drawn(op: str, count: int, seed: int) -> list:
    from hypothesis import HealthCheck, given, seed as hseed, settings
    from conformance.discover.strategies import examples
    out = []

    @hseed(seed)
    @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(examples(op, ("float32", "bfloat16")))
    def collect(example):
        out.append(example)

    collect()
    return out[:count]


def own_calls(framework: str, examples: dict) -> tuple[float, float, int]:
    """Seconds of the framework's calls alone (every API of each example's op), first calls (a
    compiled mode traces and compiles each new graph then) and repeated ones, and the count."""
    from conformance.adapters import load
    from conformance.adapters.base import prepare, unsupported_reason
    from conformance.worker import inputs
    from reference import golden, rounding

    adapter = load(framework)
    device = adapter.devices()[0]
    mode = adapter.modes[0]
    with tempfile.TemporaryDirectory() as tmp:
        specs = [e.spec(f"e{i}") for i, e in enumerate(sum(examples.values(), []))]
        built = []
        for spec in specs:
            try:
                built.append(golden.build_case(spec))
            except rounding.RoundingUndecided:
                pass
        golden.write_suite(built, tmp, "bench", {"start": 0, "max": 0})
        cases = golden.load_suite(tmp)
        work = []
        for case in cases:
            arrays = inputs(case, case.dtypes)
            for api in adapter.apis:
                if api.op == case.op and not unsupported_reason(api, case):
                    work.append((api, prepare(api, case, arrays, case.dtypes[0])))
        start = time.perf_counter()
        for api, prepared in work:  # first calls: a compiled mode compiles here
            adapter.execute(api, prepared, device.id, mode.name)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for api, prepared in work:
            adapter.execute(api, prepared, device.id, mode.name)
        return first, time.perf_counter() - start, len(cases)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frameworks", default="torch,tensorflow,jax")
    p.add_argument("--examples", type=int, default=30, help="per op")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    from conformance.runner import WORKER_ENV
    for name, value in WORKER_ENV.items():  # the framework's own calls run as a worker's do (idle threads sleep)
        os.environ.setdefault(name, value)
    from conformance.discover.search import Budget, Findings, Probe, Undecided, search_op
    from conformance.expectations import load_expectations
    from reference.ops import OPS

    expectations = load_expectations()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for framework in args.frameworks.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            probe = Probe(framework, Path(tmp), expectations)
            hello = probe.hello()
            if hello is None:
                print(f"{framework}: skipped ({probe.skipped})")
                continue
            ops = sorted({a.op for a in hello.apis} & set(OPS))
            examples = {op: drawn(op, args.examples, args.seed) for op in ops}
            for op in ops:  # warm: the worker's first calls, a mode's compiles
                probe.rows(examples[op][0])
            start, evaluated = time.perf_counter(), 0
            for op in ops:
                for e in examples[op]:
                    try:
                        probe.rows(e)
                        evaluated += 1
                    except Undecided:
                        pass
            probe_seconds = time.perf_counter() - start
            findings = Findings(set())
            start, searched = time.perf_counter(), 0
            for op in ops:
                searched += search_op(probe, op, None, ("float32", "bfloat16"), findings, Budget(), args.seed + 1,
                                      args.examples)  # other examples than those timed above: new graphs
            search_seconds = time.perf_counter() - start
            probe.close()
        first, again, calls = own_calls(framework, examples)
        per_probe, per_first, per_again = probe_seconds / evaluated, first / calls, again / calls
        print(f"{framework} {hello.version} ({hello.modes[0].name}): search {searched / search_seconds:.1f} examples/s "
              f"({searched} examples, {len(ops)} ops, relations included); one example as the search evaluates it "
              f"{per_probe * 1e3:.1f} ms; the framework's own calls on it (every API of the op) {per_first * 1e3:.2f} ms "
              f"first, {per_again * 1e3:.2f} ms again: ratio {per_probe / per_first:.1f}x to the first call, "
              f"{per_probe / per_again:.1f}x to a repeated one")


if __name__ == "__main__":
    main()
