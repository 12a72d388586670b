"""The double-word path (reference/fast_float64.py): each assumption and each bound checked
against exact rationals or arb on random and edge inputs, and its outputs against the exact
path's, with the fallback taken."""
import math
from fractions import Fraction

import numpy as np
import pytest
from flint import arb, ctx

from reference import fast, fast_float64 as f64
from reference.exact import cross_entropy_rows, log_softmax_rows
from reference.formats import FORMATS, round_fraction

from .test_fast import adversarial_rows

FMT = FORMATS["float64"]


@pytest.fixture
def precision():
    saved = ctx.prec
    ctx.prec = 300
    yield
    ctx.prec = saved


def q(v) -> Fraction:
    return Fraction(float(v))


def doubles(rng, n, low=-300, high=300):
    return rng.standard_normal(n) * 2.0 ** rng.integers(low, high, n)


def exact_of(v: arb) -> Fraction:
    man, exp = v.mid().man_exp()
    return Fraction(int(man)) * Fraction(2) ** int(exp)


def test_error_free_transformations_are_exact():
    # numpy's float64 +, -, * round to nearest even, unfused: TwoSum, FastTwoSum, Dekker exact
    rng = np.random.default_rng(1)
    a, b = doubles(rng, 4000), doubles(rng, 4000)
    b[:1000] = -a[:1000] * (1 + rng.uniform(-1e-10, 1e-10, 1000))  # cancellation
    s, t = f64.two_sum(a, b)
    assert all(q(x) + q(y) == q(u) + q(v) for x, y, u, v in zip(a, b, s, t))
    big, small = np.where(np.abs(a) >= np.abs(b), a, b), np.where(np.abs(a) >= np.abs(b), b, a)
    s, t = f64.fast_two_sum(big, small)
    assert all(q(x) + q(y) == q(u) + q(v) for x, y, u, v in zip(big, small, s, t))
    a, b = doubles(rng, 4000, -400, 400), doubles(rng, 4000, -400, 400)
    p, e = f64.two_prod(a, b)
    assert all(q(x) * q(y) == q(u) + q(v) for x, y, u, v in zip(a, b, p, e))
    # below 2**-960 the product may miss at most UNDERFLOW_SLACK
    a, b = doubles(rng, 2000, -560, -480), doubles(rng, 2000, -560, -480)
    p, e = f64.two_prod(a, b)
    assert all(abs(q(x) * q(y) - q(u) - q(v)) <= q(f64.UNDERFLOW_SLACK) for x, y, u, v in zip(a, b, p, e))


def test_products_with_powers_of_two_round_once_below_the_normal_range():
    rng = np.random.default_rng(2)
    e = rng.uniform(0.7, 1.42, 3000)
    k = rng.integers(-1076, -1000, 3000)
    first = np.maximum(k, -1022)
    rest = ((k - first + 1023) << 52).view(np.float64)
    scale = ((first + 1023) << 52).view(np.float64)
    got = (e * rest) * scale
    assert all(int(np.float64(g).view(np.uint64)) == round_fraction(FMT, q(x) * Fraction(2) ** int(kk))
               for x, kk, g in zip(e, k, got))


def exp_arguments(rng):
    """exp_dd's inputs: random, tiny, at the reductions' rounding boundaries (k ln 2 and
    j / 1024 plus half), near the underflow, with inexact shifts (dl != 0)."""
    ln2 = math.log(2)
    dh = np.concatenate([-rng.uniform(0, 745.5, 3000), -rng.uniform(0, 1, 1000), -rng.uniform(0, 2.0 ** -30, 300),
                         -np.arange(1, 1076) * ln2, -(np.arange(0, 712) + 0.5) / 1024,
                         -np.logspace(-300, 2.87, 500), [0.0, -745.5, -745.4, -708.5, -2.0 ** -1074]])
    x = rng.uniform(-3, 3, 1000) * 2.0 ** rng.integers(-60, 6, 1000)
    sh, sl = f64.two_sum(x, -40.0)
    return np.concatenate([dh, sh]), np.concatenate([np.zeros(dh.size), sl])


def test_exp_dd_is_within_its_bound(precision):
    dh, dl = exp_arguments(np.random.default_rng(3))
    eh, el, under = f64.exp_dd(dh, dl)
    err = f64.exp_error(eh, dh, under)
    worst = 0.0
    for a, b, h, l, e, u in zip(dh, dl, eh, el, err, under):
        exact = (arb(float(a)) + arb(float(b))).exp()
        gap = abs(arb(float(h)) + arb(float(l)) - exact)
        if u:
            assert h == l == 0 and exact < arb(2) ** -1075
            continue
        assert gap <= arb(float(e)), (a, b)
        if a == 0:
            assert (h, l, e) == (1.0, 0.0, 0.0)
        elif float(exact.mid()) > 2.0 ** -968:
            worst = max(worst, float((gap / exact).mid()))
    assert 0 < worst < f64.RHO
    print(f"exp_dd: worst relative error 2**{math.log2(worst):.1f}, bound RHO = 2**{math.log2(f64.RHO):.0f}")


def test_expm1_small_is_within_its_bound(precision):
    ctx.prec = 2400  # a relative bound near 2**-104 |z|, z down to 2**-1000
    rng = np.random.default_rng(4)
    z = np.concatenate([-rng.uniform(0, 2.0 ** -10, 2000), -2.0 ** -rng.uniform(10, 1000, 1000), [0.0, -2.0 ** -10]])
    h, l, err = f64.expm1_small(z)
    for a, hv, lv, e in zip(z, h, l, err):
        exact = arb(float(a)).expm1()
        assert abs(arb(float(hv)) + arb(float(lv)) - exact) <= arb(float(e))
        assert e <= abs(a) * (2.0 ** -100 + 2.0 ** -52 * a * a) + 2.0 ** -1060  # relative to z (a dominant row's log)


def test_row_sums_and_signed_sums_are_within_their_bounds():
    rng = np.random.default_rng(5)
    for classes in (1, 2, 7, 64, 1001):
        d = -rng.exponential(3, (6, classes))
        d[:, 0] = 0
        d[1] = 0  # a flat row: exact
        d[2, 1:] = -rng.uniform(30, 50, classes - 1)  # a dominant class
        eh, el, _ = f64.exp_dd(d, np.zeros_like(d))
        s, t, err = f64.row_sums(eh, el)
        for r in range(6):
            exact = sum(q(h) + q(l) for h, l in zip(eh[r], el[r]))
            assert abs(q(s[r]) + q(t[r]) - exact) <= q(err[r])
        assert err[1] == 0
    terms = f64.DD(doubles(rng, 999, -40, 40), np.zeros(999), np.zeros(999))
    terms.l[:] = terms.h * rng.uniform(-1, 1, 999) * 2.0 ** -54
    total = fast._signed_sum(terms)
    exact = sum(q(h) + q(l) for h, l in zip(terms.h, terms.l))
    assert abs(q(total.h[0]) + q(total.l[0]) - exact) <= q(total.err[0])


def dd_from(rng, n, scale=1.0):
    h = rng.uniform(0.5, 2, n) * scale
    return f64.DD(h, h * rng.uniform(-1, 1, n) * 2.0 ** -54, np.abs(h) * rng.uniform(0, 2.0 ** -70, n))


def interval_check(value: f64.DD, exact_values):
    """Every point of the inputs' intervals maps into value's: checked at the inputs' centres
    plus their full errors' worst case (the bounds are linear in them)."""
    for h, l, e, x in zip(value.h.ravel(), value.l.ravel(), value.err.ravel(), exact_values):
        assert abs(q(h) + q(l) - x) <= q(e), (h, l, e)


def test_quotient_product_and_times_row_are_within_their_bounds():
    rng = np.random.default_rng(6)
    n = 800
    c, t = dd_from(rng, n, 10.0), dd_from(rng, n)
    # exact value at the centres, the error terms evaluated at a corner of the inputs' intervals
    for sign in (1, -1):
        cc = f64.DD(c.h, c.l, c.err)
        shifted_c = [q(h) + q(l) + sign * q(e) for h, l, e in zip(c.h, c.l, c.err)]
        shifted_t = [q(h) + q(l) - sign * q(e) for h, l, e in zip(t.h, t.l, t.err)]
        interval_check(f64.quotient(cc, t), [x / y for x, y in zip(shifted_c, shifted_t)])
        interval_check(f64.product(cc, t), [x * y for x, y in zip(shifted_c, shifted_t)])
    a = dd_from(rng, 3 * 50)
    a = f64.DD(*(v.reshape(3, 50) for v in (a.h, a.l, a.err)))
    b = dd_from(rng, 3, 7.0)
    b = f64.DD(*(v.reshape(3, 1) for v in (b.h, b.l, b.err)))
    got = f64.times_row(a, b)
    for r in range(3):
        for j in range(50):
            for s in (1, -1):
                x = (q(a.h[r, j]) + q(a.l[r, j]) + s * q(a.err[r, j])) * (q(b.h[r, 0]) + q(b.l[r, 0]) + s * q(b.err[r, 0]))
                assert abs(q(got.h[r, j]) + q(got.l[r, j]) - x) <= q(got.err[r, j])


def test_log_dd_is_within_its_bound(precision):
    rng = np.random.default_rng(7)
    t1 = np.concatenate([1 + rng.uniform(0, 1, 300), rng.uniform(1, 3e5, 300), 1 + 2.0 ** -rng.uniform(1, 60, 300),
                         [1.0, 2.0, 3.0, 262144.0]])
    t2 = np.where(t1 == np.round(t1), 0.0, t1 * rng.uniform(-1, 1, t1.size) * 2.0 ** -54)
    t2[:300] = 0  # exact totals, and totals with low parts
    total = f64.DD(t1, t2, np.where(t2 == 0, 0.0, t1 * 2.0 ** -90))
    got, ok = f64.log_dd(total)
    assert ok.all()
    for h, l, e, a, b, te in zip(got.h, got.l, got.err, t1, t2, total.err):
        for s in (-1, 1):
            exact = (arb(float(a)) + arb(float(b)) + s * arb(float(te))).log()
            assert abs(arb(float(h)) + arb(float(l)) - exact) <= arb(float(e))
        if a == 1 and b == 0:
            assert h == l == e == 0


def test_round_dd_decides_only_correct_roundings():
    rng = np.random.default_rng(8)
    base = doubles(rng, 3000, -1000, 1000)
    gap = np.abs(np.nextafter(base, np.inf) - base)
    # values near the midpoints between doubles, and random offsets; bounds up to a quarter gap
    offset = np.where(rng.random(3000) < 0.5, gap * 0.5 * (1 + rng.uniform(-2.0 ** -30, 2.0 ** -30, 3000)),
                      gap * rng.uniform(-0.6, 0.6, 3000))
    h, l = f64.two_sum(base, offset)
    err = gap * rng.uniform(0, 0.25, 3000) * (rng.random(3000) < 0.8)
    bits, decided = f64.round_dd(f64.DD(h, l, err))
    assert 0.3 < decided.mean() < 1
    for hv, lv, e, b, d in zip(h, l, err, bits, decided):
        if d:  # both ends of the interval round to the bits
            for end in (q(hv) + q(lv) - q(e), q(hv) + q(lv) + q(e)):
                assert round_fraction(FMT, end) == int(b)
    exact_zero, _ = f64.round_dd(f64.DD(np.array([-0.0]), np.array([0.0]), np.array([0.0])))
    assert exact_zero[0] == 0


@pytest.mark.parametrize("source", ["bfloat16", "float16", "float32"])
def test_float64_outputs_agree_with_the_exact_path(source):
    x = adversarial_rows(FORMATS[source], np.random.default_rng(11), 60, 17)
    loss, grad, _ = fast.log_softmax(x, FMT)
    slow_loss, slow_grad = log_softmax_rows(x, FMT)
    assert (loss == slow_loss).all() and (grad == slow_grad).all()
    target = np.random.default_rng(1).integers(0, 17, 60)
    for reduction in ("none", "mean", "sum"):
        loss, grad, _ = fast.cross_entropy(x, target, FMT, reduction)
        slow_loss, slow_grad = cross_entropy_rows(x, target, reduction, FMT)
        assert loss.shape == slow_loss.shape and grad.shape == slow_grad.shape
        assert (loss == slow_loss).all() and (grad == slow_grad).all(), reduction


def test_inexact_shifts_wide_rows_and_a_dominant_class():
    rng = np.random.default_rng(4)
    x = np.stack([rng.standard_normal(300) * 3, rng.standard_normal(300) * 1e-9 + 1e3,
                  np.where(np.arange(300) == 7, 40.0, rng.standard_normal(300) * 1e-20),
                  np.where(np.arange(300) == 3, 700.0, rng.standard_normal(300)),
                  np.full(300, -2.5)])
    loss, grad, _ = fast.log_softmax(x, FMT)
    slow_loss, slow_grad = log_softmax_rows(x, FMT)
    assert (loss == slow_loss).all() and (grad == slow_grad).all()


def test_the_exact_path_takes_every_value_the_bounds_leave(monkeypatch):
    # with a bound that decides nothing, every value goes through settle: the same bits
    monkeypatch.setattr(f64, "SAFETY", 2.0 ** 200)
    x = adversarial_rows(FORMATS["float16"], np.random.default_rng(5), 6, 5)
    x[0] = 1.0  # a flat row keeps its exact zeros (l = err = 0 decide whatever the bound)
    loss, grad, slow_rows = f64.log_softmax(x)
    assert slow_rows >= 5
    slow_loss, slow_grad = log_softmax_rows(x, FMT)
    assert (loss == slow_loss).all() and (grad == slow_grad).all()


@pytest.mark.slow
def test_zero_mismatches_on_a_quarter_million_float64_elements():
    rng = np.random.default_rng(64)
    checked = 0
    for source, classes in (("float32", 1000), ("float16", 64), ("bfloat16", 3)):
        rows = -(-40000 // classes)
        x = adversarial_rows(FORMATS[source], rng, rows, classes)
        loss, grad, _ = fast.log_softmax(x, FMT)
        slow_loss, slow_grad = log_softmax_rows(x, FMT)
        assert (loss == slow_loss).all() and (grad == slow_grad).all(), (source, classes)
        checked += loss.size + grad.size
    assert checked >= 240_000
