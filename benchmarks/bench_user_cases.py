"""User case files: a 10^6-element case stored as .npy (log_softmax, and class-index
cross-entropy) generated through the proven fast path, and values beyond every format decided
without exact arithmetic. Prints wall times of one run each (this machine is shared: quote them
as such, beside the exact path's rate on a small case measured in the same run)."""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from reference.casefile import load_case_files, parse_cases  # noqa: E402
from reference.golden import build_case, generate  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "x.npy", (rng.standard_normal((1000, 1000)) * 3).astype(np.float32))
        np.save(tmp / "t.npy", rng.integers(0, 1000, 1000))
        for op, target in (("log_softmax", ""), ("cross_entropy", 'target = { npy = "t.npy" }\n')):
            (tmp / f"{op}.toml").write_text(f'[[case]]\nid = "big"\nop = "{op}"\ninput = {{ npy = "x.npy" }}\n'
                                            f'{target}dtypes = ["float32"]\n')
            seconds = timed(lambda: generate(load_case_files([tmp / f"{op}.toml"]), tmp / f"golden-{op}", "user"))
            print(f"{op}, 1000 x 1000 float32 from .npy: {seconds:.2f} s ({1e6 / seconds / 1e6:.2f} M el/s)")
        small = parse_cases([{"id": "s", "op": "log_softmax", "dtypes": ["float32"],
                              "input": [[str(v) for v in rng.standard_normal(64).astype(np.float32)]]}], "bench")[0]
        seconds = timed(lambda: build_case(small))
        print(f"the exact path on a written 1 x 64 case, all of it: {seconds / 64 * 1e3:.2f} ms per element")
        seconds = timed(lambda: parse_cases([{"id": "b", "op": "log_softmax", "input": ["1e999999999", "1.0"]}], "b"))
        print(f"input = [1e999999999, 1.0] parsed in {seconds * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
