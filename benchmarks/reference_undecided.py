"""How many of the search's examples the reference cannot round (rounding.RoundingUndecided):
the discover strategies sampled with a fixed seed, each example built as `xent discover`
builds it (golden.build_case), no framework run.

    python benchmarks/reference_undecided.py --examples 2000 --ops binary_cross_entropy_with_logits,cross_entropy

Last line: `undecided: K of N examples`."""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from conformance.discover.strategies import examples  # noqa: E402
from reference import golden, rounding  # noqa: E402
from reference.ops import OPS  # noqa: E402


def count(op: str, n: int, dtypes: tuple[str, ...], rng_seed: int, show: int = 0) -> collections.Counter:
    counts = collections.Counter()

    @seed(rng_seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(examples(op, dtypes))
    def build(example):
        counts["examples"] += 1
        try:
            golden.build_case(example.spec("sample"))
        except rounding.RoundingUndecided:
            counts["undecided"] += 1
            if counts["undecided"] <= show:
                print(json.dumps(example.table(f"undecided-{counts['undecided']}"), default=str), flush=True)
        except Exception as e:  # noqa: BLE001 (a domain error is an expected outcome, counted apart)
            counts[type(e).__name__] += 1

    build()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="examples per op")
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated op names")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--show", type=int, default=0, help="print the first N undecided examples per op as case tables")
    args = parser.parse_args()
    dtypes = tuple(d for d in args.dtypes.split(",") if d)
    total = collections.Counter()
    for op in (o for o in args.ops.split(",") if o):
        if op not in OPS:
            parser.error(f"--ops: unknown op {op!r} (known: {', '.join(OPS)})")
        started = time.perf_counter()
        counts = count(op, args.examples, dtypes, args.seed, args.show)
        total.update(counts)
        print(f"{op}: {dict(counts)} ({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"undecided: {total['undecided']} of {total['examples']} examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
