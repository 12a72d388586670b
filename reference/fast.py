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

Whole cases (the golden files: log_softmax_case, cross_entropy_case with class weights,
ignore_index and every reduction, nll_loss_case) go through the double-word path of
reference/fast_float64.py for every format: it decides the outputs, and the float64 values
the exact path's condition scales are computed from (|lse|, softmax_j, each position's loss,
all correctly rounded), so the scales come out of the same float64 operations in the same
order as in reference/losses.py, and the golden files equal the exact path's bit for bit
(tests/test_fast_cases.py). (The exact path takes those doubles as the midpoints of its arb
enclosures of at least 128 bits rounded to nearest: the same doubles unless an exact value
lies within the enclosure's radius, about 2**-120 relative, of a midpoint between doubles.) Reduced values (sum, mean) are sums of double-word terms with a
bound, divided in arb; one the bound leaves undecided raises Undecided (the case then takes
the exact path).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from flint import arb, ctx

from . import extended as ex, fast_float64, rounding
from .exact import SAFETY, TINY, U, cross_entropy_rows, enclosing_width, log_softmax_rows, slow_elements
from .fast_float64 import DD, Output
from .formats import FORMATS, FloatFormat, round_fraction, to_float64
from .losses import FLOAT_MAX, rows_of, spread, unrows as _unrows

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


def clip_to_sign(lo: np.ndarray, hi: np.ndarray, sign) -> tuple[np.ndarray, np.ndarray]:
    """An enclosure [lo, hi] cut to its value's strict sign where that is known (`sign`,
    broadcast: -1, 0 or 1): a tiny value of known sign then rounds to its own signed zero."""
    sign = np.broadcast_to(np.asarray(sign, dtype=np.float64), np.shape(lo))
    lo = np.where(sign > 0, np.abs(np.maximum(lo, 0.0)), lo)  # (abs: -0.0 to +0.0)
    hi = np.where(sign < 0, -np.abs(np.minimum(hi, 0.0)), hi)
    return lo, hi


def bracket(value: np.ndarray, err: np.ndarray, fmt: FloatFormat, sign=0) -> tuple[np.ndarray, np.ndarray]:
    """Bits of both ends of [value - err, value + err], rounded to fmt, the float64 ends
    widened to enclose the true interval, then clipped to the value's strict sign where it is
    known (`sign`, broadcast: -1, 0 or 1), so that a tiny value of known sign rounds to its
    signed zero, as the exact path's sharper enclosure does."""
    width = enclosing_width(value, err, U, TINY)
    lo, hi = clip_to_sign(value - width, value + width, sign)
    lo_bits, hi_bits = round_to_format(lo, fmt), round_to_format(hi, fmt)
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
        # lp < 0 wherever the row has another class: x_c < log(sum exp(x)), however far below
        return (*bracket(lp, lp_err, fmt, -1 if size > 1 else 0), *bracket(grad, grad_err, fmt), ok)

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
    if fmt.name == "float64":  # double-word (cross_entropy_case); -1 is never a target here
        try:
            outs, slow = cross_entropy_case(x, target, None, -1, reduction, fmt, conds=False)
        except Undecided:
            loss, grad = cross_entropy_rows(x, target, reduction, fmt)
            return loss, grad, 1
        return outs["canonical"].loss, outs["canonical"].grad, slow
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
    # softmax_j > 0, and softmax_y - 1 < 0 at the target wherever the row has another class
    grad_sign = np.ones(grad.shape)
    grad_sign[rows, target] = -1 if x.shape[1] > 1 else 0
    grad_lo, grad_hi = bracket(grad, grad_err, fmt, grad_sign)

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


# --- whole cases: every output, variant and condition scale of the exact path -----------------

FLOAT64 = FORMATS["float64"]
WORK_BITS = 128  # arb precision of the reduced values (a handful of operations per case)


class Undecided(Exception):
    """A reduced value the double-word bound leaves undecided: the case takes the exact path."""


def decide(v: DD, fmt: FloatFormat, known_zero=None, sign=0):
    """Bits of v's correct rounding to fmt and where they are decided: fast_float64.round_dd
    for float64; for a narrower format, both ends of the enclosure (widened to cover their own
    rounding, clipped to the value's strict sign when known) rounding alike, or an exact value
    (l = err = 0) rounded once (an exact 0 to +0)."""
    if fmt.name == "float64":
        return fast_float64.round_dd(v, known_zero, sign)
    h = v.h
    with np.errstate(invalid="ignore", over="ignore"):
        width = enclosing_width(h, np.abs(v.l) + v.err, U, TINY)
        lo, hi = clip_to_sign(h - width, h + width, sign)
        lo_bits, hi_bits = round_to_format(lo, fmt), round_to_format(hi, fmt)
    decided = (lo_bits == hi_bits) & np.isfinite(width) & np.isfinite(h)
    exact = (v.l == 0) & (v.err == 0) & np.isfinite(h)
    if exact.any():
        hi_bits = np.where(exact, round_to_format(np.where(h == 0, 0.0, h), fmt), hi_bits)
        decided |= exact
    return hi_bits, decided


@dataclass
class Evaluated:
    """One semantics' outputs of a case: bits in the target format, in the case's layout, and
    the exact path's condition scales (None when not asked for)."""
    loss: np.ndarray
    grad: np.ndarray
    loss_cond: np.ndarray | None = None
    grad_cond: np.ndarray | None = None


def unrows(flat: np.ndarray, x: np.ndarray) -> np.ndarray:
    """losses.unrows, contiguous (as the exact path's arrays)."""
    return np.ascontiguousarray(_unrows(flat, x))


def _mags(bits: np.ndarray) -> np.ndarray:
    """losses.mag of correctly rounded float64 values, from their bits."""
    return np.minimum(np.abs(bits.view(np.float64)), FLOAT_MAX)


def _ratio(q: Fraction) -> tuple[float, float, float]:
    """A rational as a double-word hi + lo with a bound on the rest (float() of a Fraction is
    correctly rounded: the rest is below u |lo| plus half a subnormal)."""
    try:
        hi = float(q)
    except OverflowError:  # beyond every double: the values it scales are left undecided
        return math.copysign(math.inf, q), 0.0, math.inf
    rest = q - Fraction(hi)
    lo = float(rest)
    left = abs(rest - Fraction(lo))
    return hi, lo, 0.0 if left == 0 else float(left) * (1 + 2.0 ** -50) + TINY


def _signed_sum(v: DD) -> DD:
    """Pairwise double-word sum of a 1-D array of terms of any sign: each node TwoSum(ah, bh),
    then v = al + bl and t' = t + v (two roundings, u (|v| + |t'|)), renormalised by TwoSum."""
    h, l, err = v.h, v.l, float(np.sum(v.err) * (1 + 2.0 ** -30))
    rounding = 0.0
    while h.size > 1:
        if h.size % 2:
            h, l = np.append(h, 0.0), np.append(l, 0.0)
        s, t = fast_float64.two_sum(h[0::2], h[1::2])
        w = l[0::2] + l[1::2]
        t = t + w
        rounding += float(np.sum(np.abs(w) + np.abs(t)))
        h, l = fast_float64.two_sum(s, t)
    return DD(h[:1], l[:1], np.array([SAFETY * (err + U * rounding * (1 + 2.0 ** -30)) + (TINY if rounding else 0.0)]))


def _reduced(total: DD, divisor: Fraction, fmt: FloatFormat) -> np.ndarray:
    """total / divisor correctly rounded to fmt through an arb ball (one value per case), or
    Undecided."""
    if not (np.isfinite(total.h[0]) and np.isfinite(total.l[0]) and np.isfinite(total.err[0])):
        raise Undecided  # an overflow on the way (the exact path knows the value)
    saved = ctx.prec
    ctx.prec = WORK_BITS
    try:
        ball = arb(float(total.h[0])) + arb(float(total.l[0])) + arb(0, float(total.err[0]))
        value = ball / ex.exact(divisor)
        return np.array(rounding.round_value(fmt, value), dtype=fmt.storage)
    except ex.PrecisionTooLow:
        raise Undecided from None
    finally:
        ctx.prec = saved


def _row_scales(rows: fast_float64.Rows, xc: np.ndarray, want: bool):
    """The exact path's per-row and per-element float64 quantities its condition scales read:
    |lse| and softmax_j, each correctly rounded (decided here, or left to `settle` with the
    Outputs returned). Returns (lse bits (P,), softmax bits (P, C), outputs)."""
    if not want:
        return None, None, []
    n = xc.shape[0]
    top = xc.max(axis=1, keepdims=True)
    lt = rows.log_total
    s, t = fast_float64.two_sum(top, lt.h)
    low = t + lt.l
    lse_h, lse_l = fast_float64.two_sum(s, low)
    lse = DD(np.abs(lse_h), np.where(lse_h < 0, -lse_l, lse_l), lt.err + (2.01 * U) * (np.abs(low) + np.abs(lt.l)))
    lse_bits, lse_ok = decide(DD(lse.h[:, 0], lse.l[:, 0], lse.err[:, 0]), FLOAT64)
    argmax = xc.argmax(axis=1)
    one = fast_float64.per_row(np.ones(n))
    sm = fast_float64.times_row(rows.e, fast_float64.quotient(one, rows.total))
    sm_bits, sm_ok = decide(sm, FLOAT64, rows.under, 1.0)  # under: below 2**-1075.5 / T
    ok = rows.ok
    outputs = [Output(lse_bits, lse_ok & ok, FLOAT64,
                      lambda r: lambda lp, sm_, c: ex.exact(Fraction(float(xc[r, c]))) - lp, argmax),
               Output(sm_bits, sm_ok & ok[:, None], FLOAT64, lambda r: lambda lp, sm_, c: sm_)]
    return lse_bits, sm_bits, outputs


def _lp_conds(xc: np.ndarray, lse_bits: np.ndarray) -> np.ndarray:
    """Row.cond of reference.losses.analyse_row: cap(|x_j| + |lse| + ceil(log2 C)), 0 for C = 1."""
    if xc.shape[1] == 1:
        return np.zeros(xc.shape)
    return np.minimum((np.abs(xc) + _mags(lse_bits)[:, None]) + float(spread(xc.shape[1])), FLOAT_MAX)


def _softmax_mags(xc: np.ndarray, sm_bits: np.ndarray) -> np.ndarray:
    return np.ones(xc.shape) if xc.shape[1] == 1 else _mags(sm_bits)


def log_softmax_case(x: np.ndarray, fmt: FloatFormat, conds: bool = True) -> tuple[Evaluated, int]:
    """log_softmax of finite x (class axis 1, or 0 when 1-D) and the gradient of its sum, both
    correctly rounded to fmt, and the exact path's condition scales. Returns (outputs, rows
    that needed arb)."""
    flat, _ = rows_of(x)
    flat = np.ascontiguousarray(flat, dtype=np.float64)
    size = flat.shape[1]
    loss = np.empty(flat.shape, dtype=fmt.storage)
    grad = np.empty(flat.shape, dtype=fmt.storage)
    loss_cond = np.empty(flat.shape) if conds else None
    grad_cond = np.empty(flat.shape) if conds else None
    slow = 0
    for chunk in fast_float64.chunks(*flat.shape):
        xc = flat[chunk]
        rows = fast_float64.softmax_rows(xc)
        lb, ld = decide(fast_float64.log_probs(rows), fmt)
        ratio = fast_float64.quotient(fast_float64.per_row(np.full(xc.shape[0], float(size))), rows.total)
        gb, gd = decide(fast_float64.one_minus(fast_float64.times_row(rows.e, ratio)), fmt)
        ok = rows.ok[:, None]
        lse_bits, sm_bits, outputs = _row_scales(rows, xc, conds)
        outputs += [Output(lb, ld & ok, fmt, lambda r: lambda lp, s, c: lp),
                    Output(gb, gd & ok, fmt, lambda r: lambda lp, s, c: 1 - size * s)]
        slow += len(fast_float64.settle(xc, outputs))
        loss[chunk], grad[chunk] = lb, gb
        if conds:
            lp_cond = _lp_conds(xc, lse_bits)
            loss_cond[chunk] = lp_cond
            grad_cond[chunk] = np.minimum((float(size) * _softmax_mags(xc, sm_bits)) * (2 + lp_cond) + 1.0, FLOAT_MAX)
    out = Evaluated(unrows(loss, x), unrows(grad, x),
                    None if loss_cond is None else unrows(loss_cond, x),
                    None if grad_cond is None else unrows(grad_cond, x))
    return out, slow


@dataclass
class Targets:
    """Class-index targets of a case, per position (flattened like losses.rows_of): the class,
    whether it counts (not ignore_index), its weight w[y] (0 where ignored), the class weights
    and, per semantics, the mean's denominator (1 for the other reductions)."""
    column: np.ndarray  # the target class, 0 where ignored (any valid column)
    counted: np.ndarray
    weight: np.ndarray
    class_weight: np.ndarray
    denominators: dict

    @classmethod
    def of(cls, target, weight, ignore_index: int, size: int, reduction: str, semantics) -> "Targets":
        t = np.asarray(target, dtype=np.int64).reshape(-1)
        counted = t != ignore_index
        column = np.where(counted, t, 0)
        w_class = np.ones(size) if weight is None else np.asarray(weight, dtype=np.float64)
        w = np.where(counted, w_class[column], 0.0)
        counts = np.bincount(column[counted], minlength=size)
        denominators = {}
        for name in semantics:
            if reduction != "mean":
                denominators[name] = Fraction(1)
            elif name == "mean_by_count":
                denominators[name] = Fraction(int(counted.sum()))
            else:  # the sum of w[y] over the counted positions, exactly
                denominators[name] = sum((Fraction(float(w_class[c])) * int(n) for c, n in enumerate(counts) if n),
                                         Fraction(0))
        return cls(column, counted, w, w_class, denominators)

    def scale(self, name: str) -> tuple[list[Fraction], np.ndarray, np.ndarray, np.ndarray]:
        """w[y] / D per position, exactly (per class) and as double-words with their bound."""
        d = self.denominators[name]
        exact = [Fraction(float(w)) / d for w in self.class_weight]
        parts = np.array([_ratio(q) for q in exact]).reshape(-1, 3)
        hi, lo, err = (np.where(self.counted, parts[self.column, i], 0.0) for i in range(3))
        return exact, hi, lo, err


def _reduce(name: str, targets: Targets, positions: int, total: DD | None, pos_conds: list, mags: list,
            fmt: FloatFormat, conds: bool):
    """The loss of sum or mean (reference.losses.reduce_positions), and its condition scale
    with the same float64 operations in the same order."""
    d = targets.denominators[name]
    loss = _reduced(total, d, fmt)
    if not conds:
        return loss, None
    summed = min(sum(pos_conds) + spread(positions) * sum(mags), FLOAT_MAX)
    cond = summed if d == 1 else (summed / abs(float(d)) if d else 0.0)
    return loss, np.array(min(cond, FLOAT_MAX))


def cross_entropy_case(x: np.ndarray, target, weight, ignore_index: int, reduction: str, fmt: FloatFormat,
                       semantics=("canonical",), conds: bool = True) -> tuple[dict[str, Evaluated], int]:
    """Class-index cross-entropy (class weights, ignore_index, any reduction, no smoothing) of
    finite x (class axis 1, or 0 when 1-D) and the gradient of its sum, correctly rounded to
    fmt, with the exact path's condition scales, under each semantics named ("canonical",
    "mean_by_count": the mean's denominator a count). A mean's denominator must not be 0.
    Returns ({semantics: outputs}, rows that needed arb); raises Undecided when a reduced
    value needs the exact path."""
    flat, pos_shape = rows_of(x)
    flat = np.ascontiguousarray(flat, dtype=np.float64)
    n_pos, size = flat.shape
    tg = Targets.of(target, weight, ignore_index, size, reduction, semantics)
    scales = {name: tg.scale(name) for name in semantics}
    grads = {name: np.empty(flat.shape, dtype=fmt.storage) for name in semantics}
    grad_conds = {name: np.empty(flat.shape) for name in semantics} if conds else {}
    reduced = reduction != "none"
    pos_bits = np.empty(n_pos, dtype=fmt.storage)
    pos_mags = np.zeros(n_pos)
    pos_cond = np.zeros(n_pos)
    terms = DD(np.zeros(n_pos), np.zeros(n_pos), np.zeros(n_pos))
    slow = 0
    for chunk in fast_float64.chunks(n_pos, size):
        xc, col, w = flat[chunk], tg.column[chunk], tg.weight[chunk]
        n = xc.shape[0]
        at = (np.arange(n), col)
        rows = fast_float64.softmax_rows(xc)
        ok = rows.ok
        lp = fast_float64.log_probs(rows)
        # the position's loss w[y] (-lp_y): > 0 when w[y] > 0 (lp_y < 0 for C > 1; 0 for C = 1)
        loss = fast_float64.product(DD(w, np.zeros(n), np.zeros(n)), DD(-lp.h[at], -lp.l[at], lp.err[at]))
        lse_bits, sm_bits, outputs = _row_scales(rows, xc, conds)

        def position_value(r, w=w):
            return lambda lp_, s, c: -lp_ * ex.exact(Fraction(float(w[r])))

        pb, pd = decide(loss, FLOAT64 if reduced else fmt, sign=np.sign(w) if size > 1 else 0)
        outputs.append(Output(pb, pd & ok, FLOAT64 if reduced else fmt, position_value, col))
        # T - e_y = sum of the other terms: T's bound covers their errors (e_y's is not needed)
        total, e = rows.total, rows.e
        s, t = fast_float64.two_sum(total.h[:, 0], -e.h[at])
        low = t + (total.l[:, 0] - e.l[at])
        oh, ol = fast_float64.two_sum(s, low)
        others = DD(oh, ol, total.err[:, 0] + (2.01 * U) * (np.abs(low) + np.abs(total.l[:, 0]) + np.abs(e.l[at])))
        for name in semantics:
            exact, hi, lo, err = scales[name]
            f = fast_float64.quotient(DD(hi[chunk, None], lo[chunk, None], err[chunk, None]), total)
            g = fast_float64.times_row(e, f)
            at_target = fast_float64.product(others, DD(f.h[:, 0], f.l[:, 0], f.err[:, 0]))
            g.h[at], g.l[at], g.err[at] = -at_target.h, -at_target.l, at_target.err
            sign = np.broadcast_to(np.sign(f.h), g.h.shape).copy()
            sign[at] = -sign[at]
            known_zero = rows.under & (np.abs(f.h) <= 0.5)
            known_zero[at] = False
            gb, gd = decide(g, fmt, known_zero, sign)

            def grad_value(r, exact=exact, col=col, counted=tg.counted[chunk]):
                q = ex.exact(exact[col[r]] if counted[r] else 0)
                return lambda lp_, s_, c: (s_ - int(c == col[r])) * q

            outputs.append(Output(gb, gd & ok[:, None], fmt, grad_value))
            grads[name][chunk] = gb
        slow += len(fast_float64.settle(xc, outputs))
        terms.h[chunk], terms.l[chunk], terms.err[chunk] = loss.h, loss.l, loss.err
        if reduced:
            pos_mags[chunk] = np.where(w != 0, _mags(pb), 0.0)
        else:
            pos_bits[chunk] = pb
        if conds:
            lp_cond = _lp_conds(xc, lse_bits)
            aw = np.abs(w)
            pos_cond[chunk] = np.minimum(aw * lp_cond[at], FLOAT_MAX)
            base = (aw[:, None] * _softmax_mags(xc, sm_bits)) * (2 + lp_cond)
            base[at] += aw
            base = np.minimum(base, FLOAT_MAX)
            for name in semantics:
                d = tg.denominators[name]
                scaled = base if d == 1 else np.minimum(base / abs(float(d)), FLOAT_MAX)
                grad_conds[name][chunk] = np.where(tg.counted[chunk, None], scaled, 0.0)
    # a counted position of weight 0 has the integer condition 0 in the exact path (an empty sum)
    cond_list = [0 if (c and w == 0) else v for c, w, v in
                 zip(tg.counted.tolist(), tg.weight.tolist(), pos_cond.tolist())] if conds else []
    out = {}
    for name in semantics:
        if reduced:
            loss, loss_cond = _reduce(name, tg, n_pos, _signed_sum(terms), cond_list, pos_mags.tolist(), fmt, conds)
        else:
            loss = pos_bits.reshape(pos_shape)
            loss_cond = pos_cond.reshape(pos_shape) if conds else None
        out[name] = Evaluated(loss, unrows(grads[name], x), loss_cond,
                              unrows(grad_conds[name], x) if conds else None)
    return out, slow


def nll_loss_case(x: np.ndarray, target, weight, ignore_index: int, reduction: str, fmt: FloatFormat,
                  semantics=("canonical",), conds: bool = True) -> tuple[dict[str, Evaluated], int]:
    """nll_loss of finite x (log-probabilities, class axis 1 or 0), as cross_entropy_case:
    every value is a product, a quotient or a sum of exact inputs, so only the reduced loss
    needs a bound (an exact double-word sum through an arb division)."""
    flat, pos_shape = rows_of(x)
    flat = np.ascontiguousarray(flat, dtype=np.float64)
    n_pos, size = flat.shape
    tg = Targets.of(target, weight, ignore_index, size, reduction, semantics)
    at = (np.arange(n_pos), tg.column)
    xt = flat[at]
    # -(w x): the products of two doubles, exact as p + q (Dekker; an exact 0 is +0)
    p, q = fast_float64.two_prod(-tg.weight, xt)
    zero = (tg.weight == 0) | (xt == 0)
    p, q = np.where(zero, 0.0, p), np.where(zero, 0.0, q)
    slack = fast_float64._product_slack(p, tg.weight, xt)
    reduced = reduction != "none"
    out = {}
    mags = np.minimum(np.abs(p), FLOAT_MAX)  # the float64 product is the correctly rounded one
    cond_list = [0 if (c and w == 0) else v for c, w, v in
                 zip(tg.counted.tolist(), tg.weight.tolist(), np.minimum(np.abs(tg.weight) * np.abs(xt), FLOAT_MAX).tolist())]
    for name in semantics:
        exact, _, _, _ = tg.scale(name)
        per_class = np.array([round_fraction(fmt, -v) if v else 0 for v in exact], dtype=fmt.storage)
        grad = np.zeros(flat.shape, dtype=fmt.storage)
        grad[at] = np.where(tg.counted, per_class[tg.column], 0)
        d = tg.denominators[name]
        if reduced:
            loss, loss_cond = _reduce(name, tg, n_pos, _signed_sum(DD(p, q, slack)), cond_list, mags.tolist(), fmt, conds)
        else:
            loss = round_to_format(p, fmt) if fmt.name != "float64" else p.view(np.uint64).copy()
            loss = np.where(zero, 0, loss).astype(fmt.storage).reshape(pos_shape)
            loss_cond = np.array(cond_list, dtype=float).reshape(pos_shape) if conds else None
        grad_cond = None
        if conds:
            grad_cond = np.zeros(flat.shape)
            aw = np.abs(tg.weight)
            grad_cond[at] = aw if d == 1 else np.minimum(aw / abs(float(d)), FLOAT_MAX)
            grad_cond[~tg.counted] = 0.0
        out[name] = Evaluated(loss, unrows(grad, x), loss_cond, None if grad_cond is None else unrows(grad_cond, x))
    return out, 0
