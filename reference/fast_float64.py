"""Double-word log_softmax arithmetic, vectorised and proven: the core of the fast path for
every output that must be correctly rounded to float64 (and, for whole cases, to every
format: reference/fast.py *_case), for finite float64 rows (P, C) with C < 2**23.

A float64 bound cannot decide a float64 rounding, so this path works in double-word
arithmetic (a value is an unevaluated sum h + l of two doubles, about 106 bits) with numpy,
keeping beside every quantity a rigorous bound on its error:

- each row's terms e_j = exp(x_j - top) by a double-word exp (`exp_dd`, relative error at most
  RHO = 2**-83), the shift x_j - top exact as a TwoSum pair;
- their sum T by pairwise double-word additions, each rounding bounded (`row_sums`);
- L = log T by one Newton step from numpy's log1p (`log_dd`), the remainder bounded from the
  step's own correction, so nothing is assumed of numpy's log1p;
- quotients c / T (softmax, gradients) by a corrected division (`quotient`), products
  (`product`, `times_row`);
- an output h + l with |error| <= err rounds to h when |l| + err is below half the spacing
  of doubles at h (`round_dd`); everything else is undecided.

Undecided values (2 of 2 million elements on random rows; rows with huge spreads,
subnormals or near-cancelling gradients leave more) go to reference.exact.slow_values: the
row's log-sum-exp again in arb from exact rationals, with Ziv's retry, once per row for all
its undecided values (`settle`). Bounds are first-order sums of the rounding errors, each
derived beside its code, multiplied by SAFETY (which covers the second-order terms while
relative errors stay below 2**-30), plus TINY where an absolute term is needed.

Assumptions, each checked by tests/test_fast_float64.py: numpy's float64 ufuncs (+, -, *,
/, rint, maximum) are IEEE binary64 operations rounding to nearest even and never fused, so
TwoSum, FastTwoSum and Dekker's product are error-free; a product with a power of two is
exact, or correctly rounded below the normal range. Nothing is assumed of numpy's exp, log or
log1p (exp is not used; log1p only seeds a step whose error is bounded from the values
computed); ln 2 and the exp table come from arb.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from flint import arb, ctx

from .exact import SAFETY, TINY, U, slow_values
from .formats import FORMATS

FMT = FORMATS["float64"]
EXPONENT_BITS = np.uint64(0x7FF0000000000000)
ROWS_ELEMENTS = 1 << 14  # elements per chunk of rows: keeps the temporaries in cache
MAX_CLASSES = 1 << 23  # numpy sums of C non-negative bounds err by (C - 1) u < 2**-30

# --- error-free transformations --------------------------------------------------------


def two_sum(a, b):
    """s + t = a + b exactly, s = fl(a + b) (Knuth; no overflow)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def fast_two_sum(a, b):
    """s + t = a + b exactly when |a| >= |b| or a == 0 (Dekker)."""
    s = a + b
    return s, b - (s - a)


SPLITTER = 134217729.0  # 2**27 + 1


def split(a):
    """a = hi + lo exactly, each of at most 26 significant bits (Veltkamp; |a| < 2**995)."""
    c = SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a, b):
    """p + q = a * b exactly, p = fl(a * b) (Dekker), for |a|, |b| < 2**995 and |p| >= 2**-969;
    below that, q misses at most UNDERFLOW_SLACK (every partial product rounds by at most
    2**-1075 absolute)."""
    p = a * b
    ah, al = split(a)
    bh, bl = split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


UNDERFLOW_SLACK = 2.0 ** -1069
PRODUCT_EXACT_ABOVE = 2.0 ** -960


def _product_slack(p, a, b):
    """The absolute error two_prod may leave: none when the product is 0 or large enough."""
    if np.abs(p).min(initial=np.inf) >= PRODUCT_EXACT_ABOVE:
        return 0.0
    return np.where((np.abs(p) < PRODUCT_EXACT_ABOVE) & (a != 0) & (b != 0), UNDERFLOW_SLACK, 0.0)


# --- exp -------------------------------------------------------------------------------

TABLE_STEP = 1024  # exp(d) = 2**k exp(j / 1024) exp(z), |z| <= 2**-11
TABLE_J = 356  # |j| <= rint(1024 * 0.347) = 355


def _constants():
    """ln 2 as L1 + L2 + L3: L1 a multiple of 2**-32 (32 bits), L2 a multiple of 2**-54 (22
    bits), so that for |k| < 2**11, k L1 and k L2 are exact and d - k L1 - k L2 is exact
    (exp_dd (1)); |ln 2 - L1 - L2 - L3| <= 2**-108. The table exp(j / 1024) = T1[j] + T2[j],
    |j| <= TABLE_J, to within 2**-105 relative, from arb at 300 bits; T1 split in halves."""
    saved = ctx.prec
    ctx.prec = 300
    try:
        man, exp = arb(2).log().mid().man_exp()
        ln2 = Fraction(int(man)) * Fraction(2) ** int(exp)
        l1 = Fraction(round(ln2 * 2 ** 32), 2 ** 32)
        l2 = Fraction(round((ln2 - l1) * 2 ** 54), 2 ** 54)  # |ln2 - l1| <= 2**-33: 21 bits
        l3 = float(ln2 - l1 - l2)
        assert abs(ln2 - l1 - l2 - Fraction(l3)) <= Fraction(1, 2 ** 108) and abs(l3) <= 2.0 ** -55
        t1, t2 = [], []
        for j in range(-TABLE_J, TABLE_J + 1):
            v = (arb(j) / TABLE_STEP).exp()
            hi = float(v.mid())
            lo = float((v - hi).mid())
            assert abs(v - hi - lo) < arb(2) ** -105 * hi
            t1.append(hi)
            t2.append(lo)
    finally:
        ctx.prec = saved
    t1 = np.array(t1)
    t1h, t1l = split(t1)
    return float(l1), float(l2), l3, t1, t1h, t1l, np.array(t2)


LN2_1, LN2_2, LN2_3, EXP_T1, EXP_T1H, EXP_T1L, EXP_T2 = _constants()
INV_LN2 = 1 / math.log(2)  # any double: only the size of the reduced argument depends on it
# 1 / n! of the series e**z - 1 - z - z**2 / 2 = z**3 (C3 + z (C4 + z (C5 + z C6))), rounded
C3, C4, C5, C6, C7 = 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040  # (C7: expm1_small's degree)
# exp(d) < 2**-1075.5 below this: such terms are 0, within half the smallest subnormal
EXP_UNDERFLOW = -745.5
# Relative error of exp_dd: derived below as 2**-84.6 (tests measure about 2**-87).
RHO = 2.0 ** -83


def exp_dd(dh: np.ndarray, dl: np.ndarray):
    """exp(dh + dl) for dh <= 0 (dl = 0, or the exact low part of a TwoSum, |dl| <= u |dh|):
    (eh, el, under) with |eh + el - exp(dh + dl)| <= RHO exp(dh + dl), plus TINY where parts are
    subnormal (exp_error); exact when dh = dl = 0 (every step below is then exact). `under`
    marks dh < EXP_UNDERFLOW: there eh = el = 0 and the exact value is below 2**-1075.5.

    d = k ln2 + j / 1024 + z + r2, exp(d) = 2**k T[j] (1 + M), M = e**(z + r2) - 1:
    (1) k = rint(d / ln2), |k| <= 1076. r1 = (d - k L1) - k L2 is exact: for k != 0, |d| >= 0.34,
        so d, k L1 and k L2 are multiples of 2**-54, and both differences are below 0.35 + 2**-22
        < 2**53 2**-54. r2 = dl - k L3 rounds twice: u (|k L3| + |r2|) <= u (2**-45 + 2**-43.2);
        with ln 2's representation, |k| 2**-108, the argument errs by < 2**-95.3. |r1| <= 0.347
        + 2**-42, |r2| <= 2**-43.2 (dl <= u 745.5).
    (2) j = rint(1024 r1), |j| <= 355; z = r1 - j / 1024 is exact (for j != 0, r1 and j / 1024
        are multiples of 2**-63 and |z| <= 2**-11 < 2**53 2**-63).
    (3) M = z + z**2 / 2 + tail + r2 (1 + z + z**2 / 2 + tail) + rest, tail = z**3 c(z), c(z) =
        1/6 + ... + z**3 / 720: the truncation |z|**7 / 7! 1.01 < 2**-89.3; r2's further terms,
        r2 z**4 / 24 + r2**2 / 2, 1.01 times: < 2**-87.3, their rounding 4.02 u |r2| < 2**-94;
        z**2 = zh**2 + (z + zh) zl (Veltkamp halves: zh**2 exact, the rest rounded twice:
        < 2**-99); tail = fl(fl(fl(z z) z) c~), c~ by Horner from rounded 1/n!: relative 5.1 u
        of |tail| <= 0.1667 |z|**3: < 2**-86.2; the three additions of `low`: 3.01 u (sum of
        magnitudes <= 2**-35.5): < 2**-87.0. Exact: zh**2 / 2, FastTwoSum(z, zh**2 / 2),
        TwoSum(a, low). In all |M~ - M| < 2**-85.1.
    (4) T1 + T2 = exp(j / 1024) within 2**-106 relative; T1 m1 = p1 + p2 exactly (Dekker, T1
        presplit); the five small terms round by 5.01 u 2**-52.4, the last sum by u 2**-51.4.
    Relative to exp(r) = T (1 + M) >= 0.706: 2**-84.6 < RHO / 3.
    (5) 2**k: products with powers of two, exact unless the result is subnormal (then one
        rounding: TINY / 2 per part)."""
    under = dh < EXP_UNDERFLOW
    any_under = under.any()
    d = np.maximum(dh, EXP_UNDERFLOW) if any_under else dh
    if any_under:
        dl = np.where(under, 0.0, dl)  # (x - top overflowing leaves NaN there)
    k = np.rint(d * INV_LN2)
    r1 = (d - k * LN2_1) - k * LN2_2
    r2 = dl - k * LN2_3
    j = np.rint(r1 * float(TABLE_STEP))
    z = r1 - j * (1 / TABLE_STEP)
    zh, zl = split(z)
    h2 = (zh * zh) * 0.5
    zz = z * z
    tail = (zz * z) * (C3 + z * (C4 + z * (C5 + z * C6)))
    a_hi, a_lo = fast_two_sum(z, h2)
    low = ((a_lo + ((z + zh) * zl) * 0.5) + tail) + r2 * (1.0 + ((z + h2) + tail))
    m1, m2 = two_sum(a_hi, low)
    idx = j.astype(np.intp)
    idx += TABLE_J
    t1 = EXP_T1.take(idx)
    p1 = t1 * m1
    mh, ml = split(m1)
    t1h, t1l = EXP_T1H.take(idx), EXP_T1L.take(idx)
    p2 = ((t1h * mh - p1) + t1h * ml + t1l * mh) + t1l * ml
    t2 = EXP_T2.take(idx)
    lo = (p2 + t2) + (t1 * m2 + t2 * m1)
    q1, q2 = fast_two_sum(t1, p1)  # t1 >= 0.7 > |p1|
    e1, e2 = fast_two_sum(q1, q2 + lo)
    ki = k.astype(np.int64)
    if not any_under and ki.min() >= -1022:  # 2**k is a normal double: one product each
        scale = ((ki + 1023) << 52).view(np.float64)
        eh, el = e1 * scale, e2 * scale
    else:  # 2**k = 2**(k - first) 2**first: the first product exact, the second rounds once
        first = np.maximum(ki, -1022)
        rest = ((ki - first + 1023) << 52).view(np.float64)
        scale = ((first + 1023) << 52).view(np.float64)
        eh, el = (e1 * rest) * scale, (e2 * rest) * scale
    if any_under:
        eh[under] = 0.0
        el[under] = 0.0
    return eh, el, under


def exp_error(eh: np.ndarray, dh: np.ndarray, under: np.ndarray) -> np.ndarray:
    """The error bound of exp_dd's results: RHO relative (of eh: SAFETY covers the difference),
    TINY where parts may be subnormal (eh < 2**-968, so el < 2**-1021), 0 for exp(0) = 1, TINY
    for the underflowed terms (below 2**-1075.5: callers that need that use `under`)."""
    err = np.where(dh == 0, 0.0, eh * (RHO * SAFETY))
    if eh.min() < 2.0 ** -968:
        err[eh < 2.0 ** -968] += TINY
    return err


# --- sums, log, quotients ------------------------------------------------------------------


def row_sums(h: np.ndarray, l: np.ndarray):
    """Sums along axis 1 of non-negative double-word terms, pairwise: (s, t, bound), s + t
    within bound of the exact sum of the terms. Each node adds a + b as TwoSum(ah, bh) (exact),
    then v = al + bl and t' = t + v (two roundings, at most u (|v| + |t'|)), renormalised by
    FastTwoSum (exact: terms >= 0 give |t'| <= 3.01 u s). The bound is 0 when no node rounded."""
    err = np.zeros(h.shape[0])
    while h.shape[1] > 1:
        n = h.shape[1]
        half = n // 2
        s, t = two_sum(h[:, :half], h[:, half:2 * half])
        v = l[:, :half] + l[:, half:2 * half]
        t = t + v
        err += (np.abs(v) + np.abs(t)).sum(axis=1)
        s, t = fast_two_sum(s, t)
        if n % 2:
            s = np.concatenate([s, h[:, 2 * half:]], axis=1)
            t = np.concatenate([t, l[:, 2 * half:]], axis=1)
        h, l = s, t
    # u times the sum of the nodes' magnitudes: numpy's sums of non-negative terms err by
    # < 2**-30 relative (C < MAX_CLASSES), which SAFETY covers; the product rounds only below
    # the normal range (TINY). A node whose additions land below 2**-1021 rounded nothing:
    # sums of subnormals are exact.
    return h[:, 0], l[:, 0], err * (U * SAFETY) + np.where(err > 0, TINY, 0.0)


@dataclass
class DD:
    """Double-word values h + l (|l| <= ulp(h) / 2) with |error| <= err, elementwise."""
    h: np.ndarray
    l: np.ndarray
    err: np.ndarray


def quotient(c: DD, t: DD) -> DD:
    """c / t for t > 0 (broadcasting), with a bound. q0 = fl(ch / th); the residual
    ch - q0 th = (ch - p) - pe is exact (two_prod, and Sterbenz: p is within 2u of ch),
    r = ((ch - p) - pe + cl) - q0 tl rounds three times (3.01 u of the magnitudes), q1 =
    fl(r / th) errs by u |q1| and by dividing by th instead of t: |q1| |tl| / t <= u |q1|.
    The inputs' errors: c.err / t, and |q| t.err / (t - t.err)."""
    q0 = c.h / t.h
    p, pe = two_prod(q0, t.h)
    a = c.h - p
    b = q0 * t.l
    r = ((a - pe) + c.l) - b
    q1 = r / t.h
    h, l = fast_two_sum(q0, q1)
    low = t.h - t.err  # below T; a ball reaching half of T is unusable (err inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        rounding = (3.01 * U) * (np.abs(a) + np.abs(pe) + np.abs(c.l) + np.abs(b)) / low + (2 * U) * np.abs(q1)
        slack = _product_slack(p, q0, t.h) / low
        inputs = (c.err + (np.abs(h) + np.abs(l)) * t.err) / low
        err = SAFETY * (rounding + inputs + slack)
    return DD(h, l, np.where(low > 0.5 * t.h, err, np.inf))


def product(a: DD, b: DD) -> DD:
    """a * b with a bound: ah bh exactly (two_prod), ah bl + al bh and their sum rounded
    (3.01 u of their magnitudes), al bl dropped (<= u**2 |ah bh|, kept in the bound); the
    inputs' errors |a| b.err + |b| a.err + a.err b.err."""
    p, pe = two_prod(a.h, b.h)
    x1, x2 = a.h * b.l, a.l * b.h
    h, l = fast_two_sum(p, pe + (x1 + x2))  # |pe + x1 + x2| <= 3.01 u |p|
    mag_a, mag_b = np.abs(a.h) + np.abs(a.l), np.abs(b.h) + np.abs(b.l)
    # x1, x2, their sum and pe + sum: u (|x1| + |x2|) + u |x1 + x2| + u |pe + ...|
    rounding = (3.02 * U) * (np.abs(x1) + np.abs(x2)) + U * np.abs(pe) + np.abs(a.l * b.l) * 1.01
    inputs = mag_a * b.err + mag_b * a.err + a.err * b.err
    return DD(h, l, SAFETY * (rounding + inputs) + _product_slack(p, a.h, b.h))


def times_row(a: DD, b: DD) -> DD:
    """a * b for elementwise a and a per-row column b, both normalised (|l| <= u |h|), with
    b's error taken relative to b (per row): ah bh = p + pe exactly (two_prod); the roundings
    of x1 = ah bl, x2 = al bh, their sum and pe plus it, u (|x1| + |x2| + |x1 + x2| + |pe + x1 +
    x2|), with |x1| <= |p| |bl / bh| (1 + u), and the dropped al bl <= u |x2|: at most
    u (|pe| + 3.03 |x2|) + 3.03 u |p| |bl / bh|, all 0 when the product is exact; the inputs'
    errors a.err |b| and |a b| b.err / |b|."""
    p, pe = two_prod(a.h, b.h)
    x2 = a.l * b.h
    h, l = fast_two_sum(p, pe + (a.h * b.l + x2))
    with np.errstate(divide="ignore", invalid="ignore"):
        b_rel = np.where(b.err == 0, 0.0, b.err / np.abs(b.h)) * (1 + 4 * U) \
            + np.where(b.l == 0, 0.0, (3.03 * U) * np.abs(b.l / b.h))
    err = a.err * (np.abs(b.h) * (1 + 2 * U)) + np.abs(p) * b_rel + U * (np.abs(pe) + 3.03 * np.abs(x2))
    return DD(h, l, SAFETY * err + _product_slack(p, a.h, b.h))


def expm1_small(z: np.ndarray):
    """e**z - 1 for |z| <= 2**-10 (a double): (h, l, err) with err relative to |z|, from the
    series of exp_dd step (3) with r2 = 0: tail rounding 5.1 u |tail|, the two additions
    4.01 u (|A2| + |q / 2| + |tail|), truncation |z|**8 / 8! * 1.01."""
    p, q = two_prod(z, z)
    h2 = p * 0.5
    tail = (p * z) * (C3 + z * (C4 + z * (C5 + z * (C6 + z * C7))))
    a_hi, a_lo = two_sum(z, h2)
    low = (a_lo + q * 0.5) + tail
    h, l = two_sum(a_hi, low)
    z4 = (z * z) * (z * z)
    # (TINY: the terms below the normal range round by at most half of it, absolutely)
    err = (5.11 * U) * np.abs(tail) + (4.02 * U) * (np.abs(a_lo) + np.abs(q * 0.5) + np.abs(tail)) \
        + (z4 * z4) * (1.01 / 40320) + _product_slack(p, z, z) + np.where(z == 0, 0.0, 4 * TINY)
    return h, l, SAFETY * err


def log_dd(t: DD) -> tuple[DD, np.ndarray]:
    """log T for T >= 1 (T = t.h + t.l, error t.err): (L, ok). V = T - 1 is exact as
    FastTwoSum(th - 1, tl) (th - 1 is exact for 1 <= th < 2**53). L0 = log1p(vh) (numpy, any
    accuracy); m = e**-L0 - 1 by expm1_small (relative error) when L0 <= 2**-10, else by
    exp_dd minus 1 (absolute RHO e**-L0); delta = (1 + V) e**-L0 - 1 = V + m + V m in
    double-word, and L = L0 + log1p(delta) = L0 + delta - delta**2 / 2 + r with
    |r| <= |delta|**3 / (3 (1 - |delta|)). ok is False where |delta| > 2**-20 or values are
    not finite (then the row goes to the slow path)."""
    vh, vl = fast_two_sum(t.h - 1.0, t.l)
    l0 = np.log1p(vh)
    small = l0 <= 2.0 ** -10
    m = DD(*expm1_small(np.where(small, -l0, 0.0))) if small.any() else None
    if not small.all():
        eh, el, _ = exp_dd(np.where(small, 0.0, -l0), np.zeros_like(l0))
        big_h, big_l = two_sum(eh, -1.0)
        big_h, big_l = fast_two_sum(big_h, big_l + el)  # e - 1: one rounding, u |big_l + el|
        big = DD(big_h, big_l, (RHO * SAFETY) * eh + U * np.abs(big_l))
        m = big if m is None else DD(*(np.where(small, a, b) for a, b in ((m.h, big.h), (m.l, big.l), (m.err, big.err))))
    v = DD(vh, vl, t.err)
    vm = product(v, m)
    # delta = V + m + V m (the high parts cancel): TwoSums of the high parts, exact, then
    # the low parts added (four roundings)
    s, e1 = two_sum(v.h, m.h)
    s, e2 = two_sum(s, vm.h)
    rest = ((e1 + e2) + (v.l + m.l)) + vm.l
    dh, dl = two_sum(s, rest)
    # the inputs' errors (vm.err holds |V| m.err + |m| t.err and the product's roundings),
    # and the four roundings of `rest`
    delta_err = (t.err + m.err + vm.err
                 + (4.01 * U) * (np.abs(e1) + np.abs(e2) + np.abs(v.l) + np.abs(m.l) + np.abs(vm.l)))
    ad = np.abs(dh) + np.abs(dl)
    quad = (dh * dh) * 0.5
    lh, ll = two_sum(l0, dh)
    ll = ll + (dl - quad)
    lh, ll = two_sum(lh, ll)
    # delta's error passes through log1p with slope at most 1 / (1 - |delta|); the series
    # remainder; the roundings of quad (u quad + |dh dl|) and of the last two additions
    err = (delta_err * (1 + 2 * ad) + ad ** 3 * 0.34 + U * quad + 2 * np.abs(dh * dl)
           + (2.01 * U) * (np.abs(ll) + np.abs(dl) + quad))
    ok = (ad < 2.0 ** -20) & np.isfinite(lh) & np.isfinite(err)
    return DD(lh, ll, SAFETY * err), ok



# --- rounding decisions --------------------------------------------------------------------


def round_dd(v: DD, known_zero=None, sign=None):
    """float64 bits of v's correct rounding and where they are decided: h, when every point
    of [h + l - err, h + l + err] rounds to it, that is when |l| + err is below half the
    spacing of doubles at h on its smaller side (the test's own roundings: SAFETY and TINY);
    an exact value (l = err = 0) is h itself, an exact 0 is +0 (as reference.rounding).
    known_zero marks values known to lie strictly between 0 and 2**-1075 in magnitude, of the
    strict sign `sign`: they round to that zero (a bound that small is not a double)."""
    h, l, err = v.h, v.l, v.err
    exact = (l == 0) & (err == 0)
    with np.errstate(invalid="ignore", over="ignore"):
        # half the smaller spacing of doubles at h: 2**(e - 53) for 2**e < |h| < 2**(e + 1),
        # 2**(e - 54) at |h| = 2**e; 2**e is h's exponent field alone (0 for a subnormal h:
        # never decided)
        power = (h.view(np.uint64) & EXPONENT_BITS).view(np.float64)
        half_gap = power * np.where(np.abs(h) == power, 2.0 ** -54, 2.0 ** -53)
        need = (np.abs(l) + err) * SAFETY + TINY
        decided = (need < half_gap) | exact
    decided &= np.isfinite(h)  # (a NaN or infinite l or err fails the comparison)
    bits = h.view(np.uint64).copy()
    bits[exact & (h == 0)] = 0
    if known_zero is not None and known_zero.any():
        sign = np.broadcast_to(sign, h.shape)
        bits[known_zero] = np.where(sign[known_zero] < 0, FMT.sign_bit, 0)
        decided |= known_zero
    return bits, decided


# --- one softmax row at a time, vectorised over rows -------------------------------------------


@dataclass
class Rows:
    """log_softmax quantities of finite float64 rows (P, C), each with its bound: d = x - top
    (exact TwoSum pairs), e = exp(d), `under` (e below 2**-1075.5), the total T = sum_j e_j and
    L = log T per row (shape (P, 1)), and `ok`, the rows whose bounds hold."""
    x: np.ndarray
    d: DD
    e: DD
    under: np.ndarray
    total: DD
    log_total: DD
    ok: np.ndarray


def softmax_rows(x: np.ndarray) -> Rows:
    top = x.max(axis=1, keepdims=True)
    dh, dl = two_sum(x, -top)
    eh, el, under = exp_dd(dh, dl)
    e_err = exp_error(eh, dh, under)
    t1, t2, t_round = row_sums(eh, el)
    # the terms' own errors: numpy's sum of C non-negative bounds, within 2**-30 (MAX_CLASSES)
    t_err = (e_err.sum(axis=1) * (1 + 2.0 ** -30) + t_round) * SAFETY
    total = DD(t1[:, None], t2[:, None], t_err[:, None])
    log_total, ok = log_dd(total)
    return Rows(x, DD(dh, dl, np.zeros(x.shape)), DD(eh, el, e_err), under, total, log_total, ok[:, 0])


def log_probs(rows: Rows) -> DD:
    """x_j - top - L: TwoSum(dh, -Lh) exact, then dl - Ll and the TwoSum's low part added
    (two roundings, 2.01 u of the magnitudes), renormalised exactly; L's error passes through."""
    d, lt = rows.d, rows.log_total
    s, t = two_sum(d.h, -lt.h)  # dh <= 0 and -Lh <= 0: no cancellation, |t| <= u |s|
    low = t + (d.l - lt.l)  # |d.l - lt.l| <= u (|dh| + |Lh|) <= 2u |s|: |low| <= 3.01 u |s|
    h, l = fast_two_sum(s, low)
    # the two roundings of low: u |d.l - lt.l| + u |low| <= 5.02 u**2 |s|
    return DD(h, l, lt.err + (5.1 * U * U) * np.abs(s))


def per_row(values: np.ndarray) -> DD:
    """Doubles (exact values) as a column of double-words with no error."""
    v = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    return DD(v, np.zeros_like(v), np.zeros_like(v))


def one_minus(p: DD) -> DD:
    """1 - p for normalised p: TwoSum(1, -ph) exact, then low = t - pl (one rounding, u |low|)
    and FastTwoSum(s, low), valid: s = 0, or |s| >= 2**-53 > |pl| when ph is within a factor
    2 of 1 (s exact, t = 0), or |low| <= 3u |s| otherwise."""
    s, t = two_sum(1.0, -p.h)
    low = t - p.l
    h, l = fast_two_sum(s, low)
    return DD(h, l, p.err + U * np.abs(low))


def chunks(n_rows: int, classes: int):
    step = max(1, ROWS_ELEMENTS // max(1, classes))
    for start in range(0, n_rows, step):
        yield slice(start, start + step)


# --- the exact path for what is left, and float64 log_softmax ------------------------------


@dataclass
class Output:
    """One output of a chunk of rows: bits, where they are decided, their format, and
    value(r), the value_of(lp_c, softmax_c, c) of reference.exact for row r. Elementwise
    (P, C) outputs, or one value per row (P,) at column `column[r]`."""
    bits: np.ndarray
    decided: np.ndarray
    fmt: object
    value: object
    column: np.ndarray | None = None


def settle(x: np.ndarray, outputs: list[Output]) -> set[int]:
    """The exact path for every undecided value, in place: per row, one log-sum-exp in arb
    from exact rationals (reference.exact.slow_values) for all its undecided values. Returns
    the rows that needed it."""
    undecided = np.zeros(x.shape[0], dtype=bool)
    for o in outputs:
        undecided |= ~o.decided if o.column is not None else ~o.decided.all(axis=1)
    rows = np.flatnonzero(undecided)
    for r in rows:
        items, places = [], []
        for o in outputs:
            cols = ([int(o.column[r])] if not o.decided[r] else []) if o.column is not None \
                else np.flatnonzero(~o.decided[r]).tolist()
            value = o.value(int(r)) if cols else None
            for c in cols:
                items.append((c, value, o.fmt))
                places.append((o, c))
        for (o, c), b in zip(places, slow_values(x[r], items)):
            if o.column is not None:
                o.bits[r] = b
            else:
                o.bits[r, c] = b
    return {int(r) for r in rows}


def log_softmax(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Correctly rounded float64 log_softmax and gradient of its sum, 1 - C softmax_j, of
    finite float64 rows (P, C). Returns (loss bits, grad bits, rows that needed arb)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    size = x.shape[1]
    loss = np.empty(x.shape, dtype=np.uint64)
    grad = np.empty(x.shape, dtype=np.uint64)
    slow = 0
    for chunk in chunks(*x.shape):
        xc = x[chunk]
        rows = softmax_rows(xc)
        lb, ld = round_dd(log_probs(rows))
        # 1 - e_j (C / T): exactly 0 for a row of equal values (e = 1, T = C, C / T = 1)
        ratio = quotient(per_row(np.full(xc.shape[0], float(size))), rows.total)
        gb, gd = round_dd(one_minus(times_row(rows.e, ratio)))
        ld &= rows.ok[:, None]
        gd &= rows.ok[:, None]
        slow += len(settle(xc, [Output(lb, ld, FMT, lambda r: lambda lp, s, c: lp),
                                Output(gb, gd, FMT, lambda r: lambda lp, s, c: 1 - size * s)]))
        loss[chunk], grad[chunk] = lb, gb
    return loss, grad, slow
