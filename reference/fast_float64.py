"""Correctly rounded float64 outputs of log_softmax and class-index cross-entropy, fast.

A float64 bound cannot decide a float64 rounding, so this path works wider and stays proven.
Three levels, each deciding what it can and passing the rest on:

1. Per row, the log-sum-exp M = top + log(sum_j exp(x_j - top)) as an arb ball at WORK_BITS
   (python-flint, about a microsecond per class), kept with the row's terms exp(x_j - top).
   - log-probabilities x_j - M: M is split into doubles M1 + M2 plus a bounded rest, x_j - M1
     is exact as a TwoSum pair, so the result is a double-word h + l with a bounded error; it
     rounds to h when |l| + error is below half the spacing of doubles at h.
   - gradients a_j + b softmax_j = a_j + sign(b) exp(x_j - B) with B = M - log|b| (b = -C for
     log_softmax's, the reduction's scale for cross-entropy's), vectorised in numpy's long
     double: x87 80-bit on x86-64 Linux (u = 2**-64). Assumed: numpy's long double exp is
     accurate to EXPL_ULPS ulp (tests/test_fast_float64.py checks it against arb); long double
     -> float64 casts round once, to nearest even. Both ends of the bound are cast to float64.
2. An element level 1 leaves undecided: its value in arb from the row's terms, rounded when
   the WORK_BITS ball decides it (_nearest_double).
3. Else reference.exact.slow_elements: the row again from exact rationals, Ziv's retry.

Where long double is just float64 (Windows, macOS on ARM) level 1 decides few gradients and
level 2 does the work: slower, still correct.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from flint import arb, ctx

from . import extended as ex, rounding
from .exact import SAFETY, TINY, U, cross_entropy_rows, enclosing_width, slow_elements
from .formats import FORMATS

FMT = FORMATS["float64"]
LONG = np.longdouble
U_LONG = float(np.finfo(LONG).eps) / 2
TINY_LONG = np.finfo(LONG).smallest_subnormal
EXPL_ULPS = 4
WORK_BITS = 128
ROWS_ELEMENTS = 1 << 16  # elements per chunk of rows: bounds the arb terms held at once


@dataclass
class RowSums:
    """One row's exact-path quantities at WORK_BITS: terms exp(x_j - top), their total, and
    the log-sum-exp top + log(total)."""
    terms: list
    total: arb
    lse: arb


def _row_sums(row: np.ndarray) -> RowSums:
    top = float(row.max())
    shifted, rest = _two_sum(row, -top)
    if not rest.any():  # x_j - top exact in float64 (usual: logits on a grid)
        terms = [arb(d).exp() for d in shifted.tolist()]
    else:
        t = arb(top)
        terms = [(arb(v) - t).exp() for v in row.tolist()]
    total = sum(terms, arb(0))
    return RowSums(terms, total, arb(top) + total.log())


def _split(v: arb) -> tuple[float, float, float]:
    """v as hi + lo + rest: the doubles nearest its midpoint and its remainder, and a bound on
    |rest| (float() of an arb is within an ulp: doubling the bound covers it)."""
    hi = float(v.mid())
    if not math.isfinite(hi):
        return hi, 0.0, math.inf
    rest = v - hi
    lo = float(rest.mid())
    return hi, lo, float((rest - lo).abs_upper()) * 2 + TINY


def _two_sum(a: np.ndarray, b) -> tuple[np.ndarray, np.ndarray]:
    """s + t = a + b exactly, s = fl(a + b) (Knuth's TwoSum; no overflow assumed: an infinite
    or NaN s makes the element undecided downstream)."""
    s = a + b
    b_part = s - a
    return s, (a - (s - b_part)) + (b - b_part)


def _round_double_word(h: np.ndarray, l: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bits of h, and where h is the correct rounding of every h + l + e, |e| <= err: when
    |l| + err is below half the spacing of doubles at h toward zero (the smaller side)."""
    with np.errstate(invalid="ignore"):
        half_gap = np.abs(h - np.nextafter(h, 0)) / 2  # exact, or 0 (undecided) at 2**-1074
        need = (np.abs(l) + err) * (1 + 2.0 ** -50) + TINY
        return h.view(np.uint64), need < half_gap


def _parts(values: list[arb]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hi, lo, bound = zip(*(_split(v) for v in values))
    return tuple(np.array(p).reshape(-1, 1) for p in (hi, lo, bound))


def _minus_shift(x: np.ndarray, shift: list[arb]) -> tuple[np.ndarray, np.ndarray]:
    """x_j - shift_row correctly rounded where decided: (bits, decided)."""
    s1, s2, bound = _parts(shift)
    s, t = _two_sum(x, -s1)
    rest = t - s2
    h, l = _two_sum(s, rest)
    return _round_double_word(h, l, bound + U * np.abs(rest) + TINY)


def _affine_exp(x: np.ndarray, shift: list[arb], offset: np.ndarray, offset_scale: Fraction, sign: float):
    """offset * offset_scale + sign exp(x - shift_row) in long double with a bound, where
    offset holds small integers; (bits, decided)."""
    s1, s2, bound = _parts(shift)
    s, t = _two_sum(x, -s1)
    with np.errstate(invalid="ignore", over="ignore"):
        arg = s.astype(LONG) + (t.astype(LONG) - s2.astype(LONG))
        # the rest of the shift, and the two long double roundings
        arg_err = SAFETY * (bound + U_LONG * (np.abs(t) + np.abs(s2) + np.abs(arg.astype(np.float64)))) + TINY
        y = np.exp(arg)
        # exp's error, and the argument's amplified: e**d - 1 <= d (1 + d) for d <= 1
        y_rel = EXPL_ULPS * 2 * U_LONG + arg_err * (1 + 2 * arg_err)
        # e.g. -1/n: two roundings (the quotient, the product)
        offset_long = offset.astype(LONG) * (LONG(offset_scale.numerator) / LONG(offset_scale.denominator))
        g = offset_long + sign * y
        g_err = SAFETY * (y * y_rel + U_LONG * (np.abs(g) + 2 * np.abs(offset_long))) + TINY_LONG
        width = enclosing_width(g, g_err, U_LONG, TINY_LONG)
        lo = (g - width).astype(np.float64).view(np.uint64)
        hi = (g + width).astype(np.float64).view(np.uint64)
    zero_straddle = (lo == FMT.sign_bit) & (hi == 0)
    decided = ((lo == hi) | zero_straddle) & (arg_err < 2.0 ** -30) & np.isfinite(arg)
    return np.where(zero_straddle, 0, hi).astype(np.uint64), decided


def _nearest_double(v: arb) -> int:
    """Bits of the double nearest the arb ball v (float64's rounding of every point of it):
    the double nearest its midpoint or a neighbour, when the ball lies strictly within half
    a spacing (the smaller side's) of it; else rounding.round_value (exact, or raises)."""
    h = float(v.mid())
    if math.isfinite(h) and h != 0:
        for candidate in (h, math.nextafter(h, math.inf), math.nextafter(h, -math.inf)):
            if candidate != 0 and abs(v - candidate) < abs(candidate - math.nextafter(candidate, 0)) / 2:
                return int(np.float64(candidate).view(np.uint64))
    return rounding.round_value(FMT, v)


def _with_work_precision(fn):
    saved = ctx.prec
    ctx.prec = WORK_BITS
    try:
        return fn()
    finally:
        ctx.prec = saved


def _settle(bits, decided, x, sums, exact_value, slow_value):
    """Levels 2 and 3 for the undecided elements of one output, in place. exact_value(sums_row,
    j, row) gives the arb value; slow_value(lp, softmax, j, row) the slow_elements one.
    Returns the rows that needed level 3."""
    def level_two() -> dict[int, list[int]]:
        left: dict[int, list[int]] = {}
        for r, j in zip(*np.nonzero(~decided)):
            try:
                bits[r, j] = _nearest_double(exact_value(sums[r], j, r))
            except ex.PrecisionTooLow:
                left.setdefault(int(r), []).append(int(j))
        return left

    left = _with_work_precision(level_two)
    for r, cols in left.items():
        bits[r, cols] = slow_elements(x[r], np.array(cols), FMT, lambda lp, s, c: slow_value(lp, s, c, r))
    return set(left)


def _chunks(x: np.ndarray):
    step = max(1, ROWS_ELEMENTS // max(1, x.shape[1]))
    for start in range(0, x.shape[0], step):
        yield slice(start, start + step)


def _sums(x: np.ndarray) -> list[RowSums]:
    return _with_work_precision(lambda: [_row_sums(row) for row in x])


def log_softmax(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Correctly rounded float64 log_softmax and gradient of its sum (1 - C softmax_j) of
    finite float64 rows (P, C). Returns (loss bits, grad bits, rows that needed level 3)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    size = x.shape[1]
    loss = np.empty(x.shape, dtype=np.uint64)
    grad = np.empty(x.shape, dtype=np.uint64)
    slow_rows: set[int] = set()
    log_size = _with_work_precision(lambda: arb(size).log())
    for chunk in _chunks(x):
        xc = x[chunk]
        sums = _sums(xc)
        lse = [s.lse for s in sums]
        grad_shift = _with_work_precision(lambda: [m - log_size for m in lse])
        lb, ld = _minus_shift(xc, lse)
        gb, gd = _affine_exp(xc, grad_shift, np.ones((1, 1)), Fraction(1), -1.0)
        base = chunk.start
        slow_rows |= {base + r for r in _settle(lb, ld, xc, sums, lambda s, j, r: arb(xc[r, j]) - s.lse,
                                                lambda lp, sm, c, r: lp)}
        slow_rows |= {base + r for r in _settle(gb, gd, xc, sums, lambda s, j, r: 1 - size * s.terms[j] / s.total,
                                                lambda lp, sm, c, r: 1 - size * sm)}
        loss[chunk], grad[chunk] = lb, gb
    return loss, grad, len(slow_rows)


def cross_entropy(x: np.ndarray, target: np.ndarray, reduction: str = "mean"):
    """Correctly rounded float64 class-index cross-entropy (no weights, smoothing or ignored
    targets) and its gradient, for finite float64 rows (P, C). Returns (loss bits, grad bits,
    rows that needed level 3; 1 when a reduced loss needed the exact path)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = x.shape[0]
    scale = Fraction(1, n) if reduction == "mean" else Fraction(1)
    grad = np.empty(x.shape, dtype=np.uint64)
    slow_rows: set[int] = set()
    losses: list[arb] = []  # each row's lse - x_target, kept for the loss
    log_scale = _with_work_precision(lambda: ex.exact(scale).log())
    for chunk in _chunks(x):
        xc, tc = x[chunk], target[chunk]
        sc = _sums(xc)
        losses += _with_work_precision(lambda: [s.lse - arb(xc[r, tc[r]]) for r, s in enumerate(sc)])
        hit = np.zeros(xc.shape)
        hit[np.arange(xc.shape[0]), tc] = 1.0
        gb, gd = _affine_exp(xc, _with_work_precision(lambda: [s.lse - log_scale for s in sc]),
                             -hit, scale, 1.0)
        slow_rows |= {chunk.start + r for r in _settle(
            gb, gd, xc, sc,
            lambda s, j, r: (s.terms[j] / s.total - int(j == tc[r])) * ex.exact(scale),
            lambda lp, sm, c, r: (sm - int(c == tc[r])) * ex.exact(scale))}
        grad[chunk] = gb
    if reduction == "none":
        loss = np.empty(n, dtype=np.uint64)
        for r in range(n):
            try:
                loss[r] = _with_work_precision(lambda: _nearest_double(losses[r]))
            except ex.PrecisionTooLow:
                loss[r] = slow_elements(x[r], target[r:r + 1], FMT, lambda lp, sm, c: -lp)[0]
                slow_rows.add(int(r))
        return loss, grad, len(slow_rows)
    try:
        loss = np.array(_with_work_precision(
            lambda: _nearest_double(sum(losses, arb(0)) * ex.exact(scale))), dtype=np.uint64)
    except ex.PrecisionTooLow:
        loss, _ = cross_entropy_rows(x, target, reduction, FMT)
        return loss, grad, 1
    return loss, grad, len(slow_rows)
