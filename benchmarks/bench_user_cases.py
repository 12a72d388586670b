"""User case files: 10^6-element cases stored as .npy (log_softmax; class-index cross-entropy,
plain and with class weights and ignored targets; float32 and float64) generated through the
proven fast path, a written 32 x 256 case on the fast and the exact path side by side (the
same bits), and values beyond every format decided without exact arithmetic. Prints wall
times of one run each (this machine is shared: quote the ratios measured in the same run).

    python benchmarks/bench_user_cases.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from reference import golden  # noqa: E402
from reference.casefile import load_case_files, parse_cases  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def exact_path(fn):
    """fn() with every written case on the exact path."""
    saved = golden.FAST_PATH_MIN_ELEMENTS
    golden.FAST_PATH_MIN_ELEMENTS = 10 ** 9
    try:
        return fn()
    finally:
        golden.FAST_PATH_MIN_ELEMENTS = saved


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        x = rng.standard_normal((1000, 1000)) * 3
        np.save(tmp / "x32.npy", x.astype(np.float32))
        np.save(tmp / "x64.npy", x)
        t = rng.integers(0, 1000, 1000)
        np.save(tmp / "t.npy", t)
        np.save(tmp / "t-ignored.npy", np.where(np.arange(1000) % 10 == 0, -100, t))
        weights = ", ".join(f'"{w:.6g}"' for w in rng.uniform(0.1, 3, 1000))
        cases = [
            ("log_softmax", "float32", "x32", ""),
            ("log_softmax", "float64", "x64", ""),
            ("cross_entropy", "float32", "x32", 'target = { npy = "t.npy" }\n'),
            ("cross_entropy, class weights, ignored targets, mean", "float32", "x32",
             f'target = {{ npy = "t-ignored.npy" }}\nweight = [{weights}]\nreduction = "mean"\n'),
            ("cross_entropy, class weights, ignored targets, mean", "float64", "x64",
             f'target = {{ npy = "t-ignored.npy" }}\nweight = [{weights}]\nreduction = "mean"\n'),
        ]
        for i, (label, dtype, stored, extra) in enumerate(cases):
            op = label.split(",")[0]
            (tmp / f"c{i}.toml").write_text(f'[[case]]\nid = "big"\nop = "{op}"\ninput = {{ npy = "{stored}.npy" }}\n'
                                           f'{extra}dtypes = ["{dtype}"]\n')
            (spec,) = load_case_files([tmp / f"c{i}.toml"])
            build, built = timed(lambda: golden.build_case(spec))
            write, _ = timed(lambda: golden.write_suite([built], tmp / f"golden-{i}", "user", {}))
            print(f"{label}, 1000 x 1000 {dtype} from .npy: {build + write:.2f} s, of which the reference "
                  f"{build:.2f} s ({1e6 / build / 1e6:.2f} M el/s: loss, gradient, condition scales) and the "
                  f"compressed golden file {write:.2f} s")
        rows = [[f"{v:.7g}" for v in row] for row in rng.standard_normal((32, 256)) * 3]
        (written,) = parse_cases([{"id": "w", "op": "cross_entropy", "dtypes": ["float32"], "input": rows,
                                   "target": rng.integers(0, 256, 32).tolist()}], "bench")
        fast_s, (fast_arrays, _) = timed(lambda: golden.build_case(written))
        exact_s, (exact_arrays, _) = timed(lambda: exact_path(lambda: golden.build_case(written)))
        same = golden.npz_bytes(fast_arrays) == golden.npz_bytes(exact_arrays)
        print(f"a written 32 x 256 cross_entropy case: {fast_s:.3f} s fast, {exact_s:.1f} s exact "
              f"({exact_s / fast_s:.0f}x), golden files identical: {same}")
        small = parse_cases([{"id": "s", "op": "log_softmax", "dtypes": ["float32"],
                              "input": [[str(v) for v in rng.standard_normal(64).astype(np.float32)]]}], "bench")[0]
        fast_s, _ = timed(lambda: golden.build_case(small))
        exact_s, _ = timed(lambda: exact_path(lambda: golden.build_case(small)))
        print(f"a written 1 x 64 log_softmax case: {exact_s / 64 * 1e3:.2f} ms per element exact, "
              f"{fast_s / 64 * 1e3:.3f} ms fast ({exact_s / fast_s:.0f}x)")
        seconds, _ = timed(lambda: parse_cases([{"id": "b", "op": "log_softmax", "input": ["1e999999999", "1.0"]}], "b"))
        print(f"input = [1e999999999, 1.0] parsed in {seconds * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
