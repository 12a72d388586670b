"""The float64 fast path (reference/fast_float64.py) against the exact one: the long double
exp accuracy it assumes, agreement of every output, and each level taken."""
import numpy as np
import pytest
from flint import arb, ctx

from reference import fast, fast_float64 as f64
from reference.exact import cross_entropy_rows, log_softmax_rows
from reference.formats import FORMATS

from .test_fast import adversarial_rows

FMT = FORMATS["float64"]


def exact_log_softmax(x):
    return log_softmax_rows(x, FMT)


def exact_cross_entropy(x, target, reduction):
    return cross_entropy_rows(x, target, reduction, FMT)


def exact_long(v):
    """The exact value of a long double (beyond float64's range too): its significand in
    [0.5, 1) is the sum of two doubles, its exponent a power of two."""
    significand, exponent = np.frexp(v)
    hi = float(significand)
    return (arb(hi) + arb(float(significand - f64.LONG(hi)))) * arb(2) ** int(exponent)


def test_long_double_exp_is_within_the_assumed_ulps():
    rng = np.random.default_rng(7)
    # the arguments the gradients use: x - B <= log C + a little, down to far below zero
    args = np.concatenate([rng.uniform(-40, 13, 3000), rng.uniform(-1, 1, 1000) * 2.0 ** -rng.integers(0, 60, 1000),
                           rng.uniform(-11000, -40, 1000)]).astype(f64.LONG)
    got = np.exp(args)
    ctx.prec = 200
    try:
        worst = 0.0
        for a, g in zip(args, got):
            ulp = arb(2) ** (int(np.frexp(g)[1]) - 1 - np.finfo(f64.LONG).nmant)  # g is normal here
            err = float((abs(exact_long(g) - exact_long(a).exp()) / ulp).mid())
            assert err == err  # not NaN
            worst = max(worst, err)
    finally:
        ctx.prec = 53
    assert worst < f64.EXPL_ULPS, worst


@pytest.mark.parametrize("source", ["bfloat16", "float16", "float32"])
def test_float64_fast_path_agrees_with_the_exact_one(source):
    x = adversarial_rows(FORMATS[source], np.random.default_rng(11), 60, 17)
    loss, grad, _ = fast.log_softmax(x, FMT)
    slow_loss, slow_grad = exact_log_softmax(x)
    assert (loss == slow_loss).all() and (grad == slow_grad).all()
    target = np.random.default_rng(1).integers(0, 17, 60)
    for reduction in ("none", "mean", "sum"):
        loss, grad, _ = fast.cross_entropy(x, target, FMT, reduction)
        slow_loss, slow_grad = exact_cross_entropy(x, target, reduction)
        assert loss.shape == slow_loss.shape and grad.shape == slow_grad.shape
        assert (loss == slow_loss).all() and (grad == slow_grad).all(), reduction


def test_inexact_shifts_and_wide_rows():
    # x_j - max not representable in float64 (the arb subtraction), and float64 logits
    rng = np.random.default_rng(4)
    x = np.stack([rng.standard_normal(300) * 3, rng.standard_normal(300) * 1e-9 + 1e3,
                  np.where(np.arange(300) == 7, 40.0, rng.standard_normal(300) * 1e-20)])
    loss, grad, _ = fast.log_softmax(x, FMT)
    slow_loss, slow_grad = exact_log_softmax(x)
    assert (loss == slow_loss).all() and (grad == slow_grad).all()


def test_level_two_alone_agrees_with_the_exact_one():
    # every element through the arb terms of its row, as if level 1 had decided nothing
    x = adversarial_rows(FORMATS["float32"], np.random.default_rng(3), 12, 9)
    sums = f64._sums(x)
    size = x.shape[1]
    loss = np.zeros(x.shape, dtype=np.uint64)
    grad = np.zeros(x.shape, dtype=np.uint64)
    undecided = np.zeros(x.shape, dtype=bool)
    f64._settle(loss, undecided, x, sums, lambda s, j, r: arb(x[r, j]) - s.lse, lambda lp, sm, c, r: lp)
    f64._settle(grad, undecided, x, sums, lambda s, j, r: 1 - size * s.terms[j] / s.total,
                lambda lp, sm, c, r: 1 - size * sm)
    slow_loss, slow_grad = exact_log_softmax(x)
    assert (loss == slow_loss).all() and (grad == slow_grad).all()


def test_level_three_takes_what_a_short_working_precision_leaves(monkeypatch):
    # at 16 bits the row sums decide nothing: every row goes to the exact rationals
    monkeypatch.setattr(f64, "WORK_BITS", 16)
    x = adversarial_rows(FORMATS["float16"], np.random.default_rng(5), 6, 5)
    loss, grad, slow_rows = fast.log_softmax(x, FMT)
    assert slow_rows == 6
    slow_loss, slow_grad = exact_log_softmax(x)
    assert (loss == slow_loss).all() and (grad == slow_grad).all()
    target = np.array([0, 1, 2, 3, 4, 0])
    loss, grad, slow_rows = fast.cross_entropy(x, target, FMT, "none")
    assert slow_rows == 6
    slow_loss, slow_grad = exact_cross_entropy(x, target, "none")
    assert (loss == slow_loss).all() and (grad == slow_grad).all()


@pytest.mark.slow
def test_zero_mismatches_on_a_quarter_million_float64_elements():
    rng = np.random.default_rng(64)
    checked = 0
    for source, classes in (("float32", 1000), ("float16", 64), ("bfloat16", 3)):
        rows = -(-40000 // classes)
        x = adversarial_rows(FORMATS[source], rng, rows, classes)
        loss, grad, _ = fast.log_softmax(x, FMT)
        slow_loss, slow_grad = exact_log_softmax(x)
        assert (loss == slow_loss).all() and (grad == slow_grad).all(), (source, classes)
        checked += loss.size + grad.size
    assert checked >= 240_000


def test_long_double_to_float64_casts_round_to_nearest_even():
    # midpoints between doubles (ties go to even), and a long double ulp either side of them
    from fractions import Fraction

    from reference.formats import round_fraction
    rng = np.random.default_rng(9)
    base = rng.standard_normal(3000) * 2.0 ** rng.integers(-1060, 1000, 3000)
    half = np.abs(np.nextafter(base, np.inf) - base) / 2
    mids = base.astype(f64.LONG) + half.astype(f64.LONG)
    probes = np.concatenate([mids, np.nextafter(mids, f64.LONG(np.inf)), np.nextafter(mids, f64.LONG(-np.inf))])
    got = probes.astype(np.float64).view(np.uint64)
    for p, g in zip(probes, got):
        significand, exponent = np.frexp(p)
        hi = float(significand)
        exact = (Fraction(hi) + Fraction(float(significand - f64.LONG(hi)))) * Fraction(2) ** int(exponent)
        assert int(g) == round_fraction(FMT, exact), p
