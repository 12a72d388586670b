"""The ONNX-derived user cases (cases/peer/onnx_softmax_cross_entropy.toml: class-index
cross-entropy and nll_loss with class weights, ignored targets and every reduction, shapes
up to (3, 5, 6, 6, 5, 3, 4), float32 and float64) generated three ways in one run: through
the gate as `xent generate --cases` does, every case through the fast path, every case
through the exact path. Prints the wall times and their ratio (this machine is shared:
quote the ratio), and checks that the two paths wrote identical golden files.

    python benchmarks/bench_peer_cases.py                 # about 6 minutes: the exact path
    python benchmarks/bench_peer_cases.py --exact-up-to 500   # the exact path only on small cases
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reference import golden  # noqa: E402
from reference.casefile import load_case_files  # noqa: E402

PEER = ROOT / "cases" / "peer" / "onnx_softmax_cross_entropy.toml"


def generate(specs, out: Path, threshold: int | None) -> float:
    """Seconds to write the suite, with the gate's written-case threshold set (None: as is)."""
    saved = golden.FAST_PATH_MIN_ELEMENTS
    if threshold is not None:
        golden.FAST_PATH_MIN_ELEMENTS = threshold
    try:
        start = time.perf_counter()
        golden.generate(specs, out, "user")
        return time.perf_counter() - start
    finally:
        golden.FAST_PATH_MIN_ELEMENTS = saved


def npz_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.npz"))}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--exact-up-to", type=int, default=None, help="exact path only on cases this small")
    args = p.parse_args()
    start = time.perf_counter()
    specs = load_case_files([PEER])
    parse = time.perf_counter() - start
    exact_specs = specs if args.exact_up_to is None else [s for s in specs if s.input.size <= args.exact_up_to]
    elements = sum(s.input.size * len(s.dtypes) for s in specs)
    print(f"{len(specs)} cases from {PEER.relative_to(ROOT)}, {elements} input elements over their dtypes "
          f"(the case file parsed in {parse:.2f} s, not counted below)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gate = generate(specs, tmp / "gate", None)
        fast_all = generate(specs, tmp / "fast", 0)
        fast_subset = fast_all if exact_specs is specs else generate(exact_specs, tmp / "fast-subset", 0)
        exact = generate(exact_specs, tmp / "exact", 10 ** 9)
        taken = json.loads((tmp / "gate" / "manifest.json").read_text())["cases"]
        on_fast = sum(1 for e in taken if "fallback_rows" in e)
        fast_files = npz_files(tmp / ("fast" if exact_specs is specs else "fast-subset"))
        exact_files = npz_files(tmp / "exact")
        same = sum(fast_files[name] == data for name, data in exact_files.items())
    print(f"through the gate (xent generate --cases): {gate:.2f} s ({on_fast} cases on the fast path, "
          f"{len(specs) - on_fast} below FAST_PATH_MIN_ELEMENTS = {golden.FAST_PATH_MIN_ELEMENTS} on the exact one)")
    print(f"fast path, every case:                    {fast_all:.2f} s")
    label = "every case:                   " if exact_specs is specs else \
        f"{len(exact_specs)} cases of at most {args.exact_up_to} elements:"
    print(f"exact path, {label} {exact:.1f} s, {exact / fast_subset:.0f}x the fast path's {fast_subset:.2f} s")
    print(f"golden files identical byte for byte: {same} of {len(exact_files)}")


if __name__ == "__main__":
    main()
