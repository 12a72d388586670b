"""The `large` suite: LLM-vocabulary log_softmax and class-index cross-entropy, generated on
demand (`xent generate --suite large`, not kept in git) with the proven fast path.

Realistic logit distributions, each at vocabularies 32768, 131072 and 262144:
- sharp: N(0, 1) * 6, a peaked softmax like a trained model's;
- flat: N(0, 1) * 0.5, nearly uniform;
- dominant: N(0, 1) with one class at +18, almost all the mass on one token.
The golden files have the default suite's format (canonical semantics only: no weights,
ignored targets or special values, so no variant differs), with float32 condition scales.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import fast
from .formats import FORMATS, to_float64
from .ops import OPS
from .golden import case_params, manifest_entry, write_suite

VOCABULARIES = (32768, 131072, 262144)
DISTRIBUTIONS = ("sharp", "flat", "dominant")
DTYPES = ("bfloat16", "float16", "float32")
POSITIONS = 4
LARGE_OPS = (("log_softmax", "none"), ("cross_entropy", "none"), ("cross_entropy", "mean"))


def _logits(distribution: str, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)  # PCG64: the same numbers on every platform
    x = rng.standard_normal((POSITIONS, classes))
    if distribution == "sharp":
        x *= 6
    elif distribution == "flat":
        x *= 0.5
    else:
        x[np.arange(POSITIONS), rng.integers(0, classes, POSITIONS)] = 18.0
    return x, rng.integers(0, classes, POSITIONS)


def build(case_id: str, op: str, reduction: str, distribution: str, classes: int, seed: int):
    x64, target = _logits(distribution, classes, seed)
    arrays, precision = {}, {}
    fell_back = {}
    for dtype in DTYPES:
        fmt = FORMATS[dtype]
        bits = fast.round_to_format(x64, fmt)
        x = to_float64(bits, fmt)
        arrays[f"input.{dtype}"] = bits
        if OPS[op].has_targets:  # the proven fast path covers these two ops
            loss, grad, n = fast.cross_entropy(x, target, fmt, reduction)
        else:
            loss, grad, n = fast.log_softmax(x, fmt)
        fell_back[dtype] = n
        conds = fast.condition_scales(x, target if OPS[op].has_targets else None, reduction)
        for o, value in (("loss", loss), ("grad", grad)):
            arrays[f"expected.{dtype}.canonical.{o}"] = value
            arrays[f"cond.{dtype}.canonical.{o}"] = conds[o].astype(np.float32)
        precision[dtype] = 53  # decided by the float64 bound (rows that fell back: see fell_back)
    if OPS[op].has_targets:
        arrays["target"] = target.astype(np.int64)
    has_targets = OPS[op].has_targets
    entry = manifest_entry(
        case_id, op, source="reference/large.py", dtypes=DTYPES, input_shape=[POSITIONS, classes],
        params=case_params("index" if has_targets else None, -100, 0.0, reduction, False, False),
        tags=["large", f"distribution:{distribution}"],
        features={f"op:{op}", "shape:NxC", f"classes:{classes}", f"distribution:{distribution}",
                  f"reduction:{reduction}"} | ({"target:index"} if has_targets else set()),
        expect_error=None, precision_bits=precision, variants={}, fallback_rows=fell_back)
    return arrays, entry


def cases(vocabularies=VOCABULARIES):
    seed = 0
    for classes in vocabularies:
        for distribution in DISTRIBUTIONS:
            for op, reduction in LARGE_OPS:
                seed += 1
                short = f"{OPS[op].short}-{reduction}" if OPS[op].has_targets else OPS[op].short
                yield f"large-{short}-{distribution}-{classes}", op, reduction, distribution, classes, seed


def generate(out_dir: str | Path, progress=None, vocabularies=VOCABULARIES, force: bool = False) -> Path:
    return write_suite((build(*case) for case in cases(vocabularies)), out_dir, "large",
                       {"fast_path": 53, "fallback": "reference.rounding"}, progress, force)
