"""A fast path that stays proven: log_softmax and class-index cross-entropy in float64 with
numpy, an a-priori error bound per element, both ends of [value - bound, value + bound]
rounded to the target format, and the exact path (reference/exact.py) for every
element whose two ends round differently (Ziv's strategy). float64 targets go to
reference/fast_float64.py: a float64 bound cannot decide a float64 rounding.

Assumptions the bound rests on, each checked by tests/test_fast.py against arb:
- float64 arithmetic is IEEE round-to-nearest: each +, -, *, / errs by at most u = 2**-53
  relative (numpy's float64 ufuncs are IEEE operations).
- numpy's float64 exp and log are accurate to EXP_LOG_ULPS ulp (relative error at most
  EXP_LOG_ULPS * 2u), far above their measured error; exp results below the normal range
  err by at most one subnormal spacing (2**-1074).
- A sum of n non-negative terms in any order errs by at most (n - 1) u times the exact sum
  (Higham, Accuracy and Stability, 4.2), so numpy's summation order does not matter; rows
  that bound leaves undecided are summed again with math.fsum, which returns the correctly
  rounded sum (Shewchuk's algorithm in CPython): one rounding, however many classes.
The bound adds the first-order terms and multiplies by SAFETY, which covers the second-order
terms while every relative error is below 2**-30 (checked before the bound is used: rows
outside it go to the slow path).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import extended as ex, fast_float64
from .exact import SAFETY, TINY, U, cross_entropy_rows, enclosing_width, log_softmax_rows, slow_elements
from .formats import FloatFormat, to_float64
from .losses import spread

EXP_LOG_ULPS = 4


def round_to_format(values: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Bit patterns of float64 values correctly rounded (to nearest, ties to even) into fmt:
    always one rounding (checked exhaustively against reference.formats by tests/test_fast.py)."""
    v = np.asarray(values, dtype=np.float64)
    if not v.flags.c_contiguous:  # the bfloat16 path writes through v.ravel()'s positions
        v = v.copy()
    if fmt.name in ("float32", "float16"):  # numpy's float64 casts to these round once, to nearest even
        with np.errstate(over="ignore"):
            return v.astype(np.float32 if fmt.name == "float32" else np.float16).view(fmt.storage)
    if fmt.name == "bfloat16":
        return _bfloat16_bits(v, fmt)
    return _general_round(v, fmt).view(np.uint64)


def _bfloat16_bits(v: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """float64 -> float32 (numpy's cast: one rounding to nearest even), then to nearest even
    on the float32 bit pattern by the classic add-and-shift (a carry into the exponent is right:
    IEEE magnitudes order like integers, and it makes overflow infinity). Rounding twice is
    wrong only where the float32 value is a bfloat16 midpoint (low 16 bits 0x8000) that v is
    not: those few elements, and NaNs, take the general path."""
    with np.errstate(over="ignore", invalid="ignore"):
        single = v.astype(np.float32).view(np.uint32)
    low = single & np.uint32(0xFFFF)
    out = ((single + np.uint32(0x7FFF) + ((single >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
    redo = np.flatnonzero((low == 0x8000) | ((single & np.uint32(0x7FFFFFFF)) > 0x7F800000))
    if redo.size:
        exact = _general_round(v.ravel()[redo], fmt)
        out.ravel()[redo] = exact.astype(np.float32).view(np.uint32) >> np.uint32(16)  # exact: bfloat16 values
    return out


def _general_round(v: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Float64 values of v rounded to fmt, with exact steps only: frexp, scaling by a power of
    two and rint (which rounds to an integer with ties to even)."""
    finite = np.isfinite(v)
    safe = np.where(finite, v, 0.0)
    _, e = np.frexp(safe)  # |v| in [2**(e-1), 2**e)
    quantum_exp = np.maximum(e - 1, fmt.emin) - fmt.frac_bits
    rounded = np.ldexp(np.rint(np.ldexp(safe, -quantum_exp)), quantum_exp)
    out = np.where(finite, rounded, v)
    return np.where(np.abs(out) > float(fmt.max_finite), np.copysign(np.inf, out), out)


def log_softmax_bound(x: np.ndarray, exact_sum: bool = False):
    """log_softmax of finite float64 rows (P, C) with a rigorous absolute error bound per
    element, and the row-wise softmax with its bound. Returns (lp, lp_err, sm, sm_err, ok),
    where ok marks the rows the bound covers (the others need the slow path). The sum of the
    exponentials is numpy's (any order: bound (C - 1) u) or, with exact_sum, math.fsum's
    (correctly rounded: bound u). Every bound below is an upper bound of its first-order
    terms, written as a row constant plus a multiple of |d| = -d so that it costs few passes."""
    x = np.asarray(x, dtype=np.float64)
    size = x.shape[1]
    top = x.max(axis=1, keepdims=True)
    d = x - top  # d <= 0, one rounding: |err| <= u |d|
    e = np.exp(d)
    # exp's relative error: its own, and d's error amplified: EXP_LOG_ULPS 2u + u |d|
    worst = EXP_LOG_ULPS * 2 * U - U * d.min(axis=1, keepdims=True)
    # the terms' own errors, the sum's rounding, and subnormal exp results (absolute 2**-1074
    # each, relative to a total that is at least 1: the max term is exp(0) = 1)
    if exact_sum:
        total = np.array([[math.fsum(row)] for row in e])
        total_rel = worst + U * (1 + worst) + size * TINY
    else:
        total = e.sum(axis=1, keepdims=True)
        total_rel = worst + (size - 1) * U * (1 + worst) + size * TINY
    log_total = np.log(total)  # >= 0
    log_err = EXP_LOG_ULPS * 2 * U * log_total + total_rel * (1 + 2 * total_rel)
    lp = d - log_total  # <= 0
    # d's error, log's, and the subtraction's u |lp| <= u (log_total + |d|)
    lp_err = SAFETY * (log_err + U * log_total) - (2 * SAFETY * U) * d
    sm = e / total
    # relative: exp's, the total's, the division's
    sm_err = sm * (SAFETY * (EXP_LOG_ULPS * 2 * U + total_rel + U) - (SAFETY * U) * d)
    sm_err += TINY
    ok = (total_rel < 2.0 ** -30).all(axis=1)
    return lp, lp_err, sm, sm_err, ok


def target_gradient(sm: np.ndarray, sm_err: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """softmax_y - 1 at each row's target, as -sum_{j != y} softmax_j: no cancellation when
    softmax_y is close to 1 (a sharp distribution), one correctly rounded sum."""
    rest = np.empty(sm.shape[0])
    rest_err = np.empty(sm.shape[0])
    for r, y in enumerate(target):
        others = np.delete(sm[r], y)
        rest[r] = math.fsum(others)
        rest_err[r] = SAFETY * (math.fsum(np.delete(sm_err[r], y)) + U * rest[r])
    return -rest, rest_err


def bracket(value: np.ndarray, err: np.ndarray, fmt: FloatFormat) -> tuple[np.ndarray, np.ndarray]:
    """Bits of both ends of [value - err, value + err], rounded to fmt, the float64 ends
    widened to enclose the true interval."""
    width = enclosing_width(value, err, U, TINY)
    lo_bits, hi_bits = round_to_format(value - width, fmt), round_to_format(value + width, fmt)
    # ends at -0 and +0 agree on 0, as in rounding.round_value: the sign of zero is not part
    # of the contract (both ends at -0 stay -0, the correct rounding of a tiny negative value)
    straddle = hi_bits == 0
    straddle &= lo_bits == fmt.sign_bit
    if straddle.any():
        lo_bits[straddle] = 0
    return lo_bits, hi_bits


def log_softmax(x: np.ndarray, fmt: FloatFormat) -> tuple[np.ndarray, np.ndarray, int]:
    """Correctly rounded log_softmax and its gradient (of the sum) for finite float64 rows
    (P, C), exactly representable in fmt. Returns (loss bits, grad bits, rows that fell back)."""
    if fmt.name == "float64":
        return fast_float64.log_softmax(x)
    size = x.shape[1]

    def attempt(rows_x, exact_sum):
        lp, lp_err, sm, sm_err, ok = log_softmax_bound(rows_x, exact_sum)
        grad = 1 - size * sm  # d/dx_j sum_c lp_c
        # size sm_err, and u (size sm + |grad|) <= u + 2 u size sm <= u + size sm_err / 4
        # (sm_err >= 9 u sm): the product's and the subtraction's rounding
        grad_err = sm_err * (1.25 * SAFETY * size) + SAFETY * U
        return (*bracket(lp, lp_err, fmt), *bracket(grad, grad_err, fmt), ok)

    loss_lo, loss_hi, grad_lo, grad_hi, ok = attempt(x, False)
    again = np.flatnonzero(~ok | (loss_lo != loss_hi).any(axis=1) | (grad_lo != grad_hi).any(axis=1))
    if again.size:  # a tighter bound (a correctly rounded sum) for the rows left undecided
        loss_lo[again], loss_hi[again], grad_lo[again], grad_hi[again], ok[again] = attempt(x[again], True)
    for row in np.flatnonzero(~ok):  # outside the bound's range: the whole row, exactly
        loss_lo[row], grad_lo[row] = log_softmax_rows(x[row:row + 1], fmt)
    fell_back = int((~ok).sum())
    for row in np.flatnonzero(ok & ((loss_lo != loss_hi).any(axis=1) | (grad_lo != grad_hi).any(axis=1))):
        fell_back += 1
        cols = np.flatnonzero(loss_lo[row] != loss_hi[row])
        if cols.size:
            loss_lo[row, cols] = slow_elements(x[row], cols, fmt, lambda lp, s, c: lp)
        cols = np.flatnonzero(grad_lo[row] != grad_hi[row])
        if cols.size:
            grad_lo[row, cols] = slow_elements(x[row], cols, fmt, lambda lp, s, c: 1 - size * s)
    return loss_lo, grad_lo, fell_back


def cross_entropy(x: np.ndarray, target: np.ndarray, fmt: FloatFormat, reduction: str = "mean"):
    """Correctly rounded class-index cross-entropy (no weights, smoothing or ignored targets)
    and its gradient, for finite float64 rows (P, C). Returns (loss bits, grad bits, fallbacks):
    rows that fell back for 'none', or 1 when a reduced value needed the exact path."""
    if fmt.name == "float64":
        return fast_float64.cross_entropy(x, target, reduction)
    lp, lp_err, sm, sm_err, ok = log_softmax_bound(x, exact_sum=True)
    rows = np.arange(x.shape[0])
    loss, loss_err = -lp[rows, target], lp_err[rows, target]
    grad, grad_err = sm.copy(), sm_err.copy()
    grad[rows, target], grad_err[rows, target] = target_gradient(sm, sm_err, target)
    n = x.shape[0]
    if reduction != "none":
        total = loss.sum()
        total_err = SAFETY * (loss_err.sum() + (n - 1) * U * np.abs(loss).sum())
        if reduction == "mean":
            total, total_err = total / n, SAFETY * (total_err / n + U * abs(total / n))
            grad, grad_err = grad / n, SAFETY * (grad_err / n + U * np.abs(grad / n))
        loss, loss_err = np.array(total), np.array(total_err)
    loss_lo, loss_hi = bracket(loss, loss_err, fmt)
    grad_lo, grad_hi = bracket(grad, grad_err, fmt)
    def exact(rows_x, t, reduction_for_rows):
        return cross_entropy_rows(rows_x, t, reduction_for_rows, fmt)

    if reduction != "none":
        fell_back = 0
        if not ok.all() or (loss_lo != loss_hi).any():
            loss_lo, grad_lo = exact(x, target, reduction)  # the reduced value needs every row
            return loss_lo, grad_lo, 1
        scale = Fraction(1, n) if reduction == "mean" else Fraction(1)
        for row in np.flatnonzero((grad_lo != grad_hi).any(axis=1)):
            cols = np.flatnonzero(grad_lo[row] != grad_hi[row])
            y = int(target[row])
            grad_lo[row, cols] = slow_elements(x[row], cols, fmt, lambda lp, s, c: (s - (c == y)) * ex.exact(scale))
            fell_back += 1
        return loss_lo, grad_lo, fell_back
    undecided = ~ok | (loss_lo != loss_hi) | (grad_lo != grad_hi).any(axis=1)
    for row in np.flatnonzero(undecided):
        l_bits, g_bits = exact(x[row:row + 1], target[row:row + 1], "none")
        loss_lo[row], grad_lo[row] = l_bits[0], g_bits[0]
    return loss_lo, grad_lo, int(undecided.sum())


def log_softmax_bits(bits: np.ndarray, fmt: FloatFormat, rows_per_chunk: int = 16):
    """log_softmax (and gradient) of a (P, C) array of fmt bit patterns, a chunk of rows at a
    time so that no float64 temporary of the whole input exists: peak memory is the input and
    output bits plus a few chunks. Returns (loss bits, grad bits, rows that fell back)."""
    loss = np.empty_like(bits)
    grad = np.empty_like(bits)
    fell_back = 0
    for start in range(0, bits.shape[0], rows_per_chunk):
        chunk = slice(start, start + rows_per_chunk)
        loss[chunk], grad[chunk], n = log_softmax(to_float64(bits[chunk], fmt), fmt)
        fell_back += n
    return loss, grad, fell_back


def condition_scales(x: np.ndarray, target: np.ndarray | None, reduction: str) -> dict[str, np.ndarray]:
    """The condition scales of docs/tolerance.md, vectorised (float64 estimates suffice), of
    log_softmax (no target) or of class-index cross-entropy."""
    lp, _, sm, _, _ = log_softmax_bound(x, exact_sum=True)
    lse = np.abs(x - lp)  # |lse| per row, broadcast
    lp_cond = np.abs(x) + lse + spread(x.shape[1])
    size = x.shape[1]
    if target is None:
        return {"loss": lp_cond, "grad": size * sm * (2 + lp_cond) + 1}
    rows = np.arange(x.shape[0])
    coef = np.zeros_like(x)
    coef[rows, target] = 1
    grad_cond = sm * (2 + lp_cond) + coef
    loss_cond = lp_cond[rows, target]
    if reduction == "none":
        return {"loss": loss_cond, "grad": grad_cond}
    n = x.shape[0]
    total = loss_cond.sum() + spread(n) * np.abs(lp[rows, target]).sum()
    if reduction == "sum":
        return {"loss": np.array(total), "grad": grad_cond}
    return {"loss": np.array(total / n), "grad": grad_cond / n}
