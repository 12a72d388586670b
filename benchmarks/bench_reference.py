"""Reference throughput and memory, measured side by side in one run (this machine is shared
and noisy: quote the ratios, not the absolute rates).

    python benchmarks/bench_reference.py            # throughput ratios (about a minute)
    python benchmarks/bench_reference.py --large    # plus the 131072 x 1024 bfloat16 case

Throughput is in correctly rounded output elements per second on one core (numpy's exp and
log are single-threaded). "naive mpmath" is the loop a reference written without care would
run: each row's logsumexp at 128 bits, each element rounded through a Fraction; it is neither
fast nor proven (it never checks its own error), which is the point of comparing with it.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mpmath  # noqa: E402
import numpy as np  # noqa: E402

from reference import fast  # noqa: E402
from reference.exact import log_softmax_rows  # noqa: E402
from reference.formats import FORMATS, round_fraction, to_float64  # noqa: E402


def rows_in(fmt, rows, classes, seed=0):
    x = np.random.default_rng(seed).standard_normal((rows, classes)) * 3
    return fast.round_to_format(x, fmt)


def rate(fn, elements, min_seconds=1.0):
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return runs * elements / elapsed


def naive_mpmath(x, fmt):
    mpmath.mp.prec = 128
    out = []
    for row in x:
        values = [mpmath.mpf(float(v)) for v in row]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in values))
        for v in values:
            man, exp = (v - lse).man_exp
            out.append(round_fraction(fmt, Fraction(int(man)) * Fraction(2) ** int(exp)))
    return out


def throughput():
    results = {}
    for name in ("bfloat16", "float16", "float32", "float64"):
        fmt = FORMATS[name]
        big = to_float64(rows_in(fmt, 64, 4096), fmt)
        small = to_float64(rows_in(fmt, 4, 256, seed=1), fmt)
        tiny = small[:1, :64]
        r = {"fast": rate(lambda: fast.log_softmax(big, fmt), big.size)}  # float64: fast_float64
        r["arb"] = rate(lambda: log_softmax_rows(small, fmt), small.size)
        r["naive_mpmath"] = rate(lambda: naive_mpmath(tiny, fmt), tiny.size)
        results[name] = r
    return results


CLASSES, POSITIONS = 131072, 1024


def large_child() -> None:
    """In a fresh process: build the case's bfloat16 input a chunk at a time, generate its
    correctly rounded log_softmax and gradient, print seconds, fallbacks and peak memory."""
    fmt = FORMATS["bfloat16"]
    rng = np.random.default_rng(0)
    bits = np.empty((POSITIONS, CLASSES), dtype=np.uint16)
    for r in range(0, POSITIONS, 16):
        bits[r:r + 16] = fast.round_to_format(rng.standard_normal((16, CLASSES)) * 3, fmt)
    start = time.perf_counter()
    _, _, fell_back = fast.log_softmax_bits(bits, fmt)
    seconds = time.perf_counter() - start
    print(seconds, fell_back, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def large_case():
    """The 131072-class x 1024-position bfloat16 case: wall time, and the process's peak memory
    (ru_maxrss, interpreter and input included) against the size of its float64 input."""
    out = subprocess.run([sys.executable, __file__, "--large-child"], capture_output=True, text=True,
                         check=True).stdout.split()
    seconds, fell_back, peak_kib = float(out[0]), int(out[1]), int(out[2])
    return {"seconds": seconds, "fallback_rows": fell_back, "peak_bytes": peak_kib * 1024,
            "peak_over_float64_input": peak_kib * 1024 / (POSITIONS * CLASSES * 8)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--large", action="store_true")
    p.add_argument("--large-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.large_child:
        large_child()
        return
    res = throughput()
    print(f"{'dtype':9} {'fast el/s':>12} {'arb el/s':>10} {'mpmath el/s':>12} {'fast/mpmath':>12} {'arb/mpmath':>11}")
    for name, r in res.items():
        print(f"{name:9} {r['fast']:12.3g} {r['arb']:10.3g} {r['naive_mpmath']:12.3g} "
              f"{r['fast'] / r['naive_mpmath']:12.1f} {r['arb'] / r['naive_mpmath']:11.1f}")
    if args.large:
        big = large_case()
        print(f"131072 x 1024 bfloat16 log_softmax + gradient: {big['seconds']:.1f} s, peak memory "
              f"{big['peak_over_float64_input']:.2f}x its float64 input, {big['fallback_rows']} rows fell back")
        res["large"] = big
    print(json.dumps(res))


if __name__ == "__main__":
    main()
