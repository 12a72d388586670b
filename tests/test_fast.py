"""The fast path against the exact one: vectorised rounding exhaustively, the exp/log
accuracy the bound assumes, and agreement of outputs, with the fallback taken."""
from fractions import Fraction

import numpy as np
import pytest
from flint import arb, ctx

from reference import fast
from reference.exact import cross_entropy_rows, log_softmax_rows
from reference.formats import FORMATS, decode, round_fraction, special_bits, to_float64

SMALL = ["float16", "bfloat16"]


@pytest.mark.parametrize("name", SMALL)
def test_vectorised_rounding_exhaustive_with_midpoints(name):
    fmt = FORMATS[name]
    top = special_bits(fmt, "+inf")
    finite = np.array([float(decode(fmt, b)) for b in range(top)])  # ascending, >= 0
    mids = (finite[:-1] + finite[1:]) / 2  # exact in float64
    probes = np.concatenate([finite, mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf)])
    probes = np.concatenate([probes, -probes])
    expected = np.array([round_fraction(fmt, Fraction(float(v))) for v in probes])
    got = fast.round_to_format(probes, fmt).astype(np.int64)
    zero = (expected & ~fmt.sign_bit) == 0
    assert ((got == expected) | (zero & ((got & ~fmt.sign_bit) == 0))).all()


@pytest.mark.parametrize("name", ["float32", "float64"])
def test_vectorised_rounding_random(name):
    fmt = FORMATS[name]
    rng = np.random.default_rng(3)
    v = rng.standard_normal(20000) * 2.0 ** rng.integers(-160, 140, 20000)
    v = np.concatenate([v, [3.5e38, -3.5e38, 1e-46, 7e-46, 0.0]])
    expected = [round_fraction(fmt, Fraction(float(x))) for x in v]
    assert [int(b) for b in fast.round_to_format(v, fmt)] == expected


def test_numpy_exp_and_log_are_within_the_assumed_ulps():
    rng = np.random.default_rng(5)
    xs = np.concatenate([rng.uniform(-745, 0, 4000), rng.uniform(-1, 0, 2000), -np.logspace(-300, 2.8, 2000)])
    ys = np.concatenate([rng.uniform(1, 2.0 ** 20, 4000), 1 + rng.uniform(0, 1e-6, 2000), rng.uniform(1, 4, 2000)])
    ctx.prec = 200
    try:
        worst = 0.0
        for fn, inputs, ref in ((np.exp, xs, lambda t: arb(t).exp()), (np.log, ys, lambda t: arb(t).log())):
            got = fn(inputs)
            for t, g in zip(inputs, got):
                exact = ref(float(t))
                if g == 0 or abs(float(exact.mid())) < 2.0 ** -1022:
                    continue  # subnormal results: covered by the absolute TINY term
                err = abs(float((arb(float(g)) - exact).mid())) / float(np.spacing(abs(g)))
                worst = max(worst, err)
    finally:
        ctx.prec = 53
    assert worst < fast.EXP_LOG_ULPS, worst


def adversarial_rows(fmt, rng, rows, classes):
    """Exactly representable rows: ordinary, huge spreads, subnormals, ties, a dominant
    class, values near log(max)."""
    big, tiny = float(fmt.max_finite), float(fmt.min_subnormal)
    kinds = [
        lambda: rng.standard_normal(classes) * 4,
        lambda: rng.choice([big, -big, 0.0, 1.0], classes),
        lambda: rng.choice([tiny, -tiny, 2 * tiny, 0.0], classes),
        lambda: np.full(classes, rng.standard_normal() * 10),
        lambda: np.where(np.arange(classes) == 0, 30.0, rng.standard_normal(classes)),
        lambda: rng.uniform(0.9, 1.0, classes) * np.log(big),
    ]
    x = np.stack([kinds[i % len(kinds)]() for i in range(rows)])
    bits = fast.round_to_format(x, fmt)
    return np.vectorize(lambda b: float(decode(fmt, int(b))))(bits)


@pytest.mark.parametrize("name", ["bfloat16", "float16", "float32"])
def test_fast_agrees_with_slow_on_adversarial_rows(name):
    fmt = FORMATS[name]
    x = adversarial_rows(fmt, np.random.default_rng(11), 60, 17)
    loss, grad, _ = fast.log_softmax(x, fmt)
    slow_loss, slow_grad = log_softmax_rows(x, fmt)
    assert (loss == slow_loss).all() and (grad == slow_grad).all()
    target = np.random.default_rng(1).integers(0, 17, 60)
    for reduction in ("none", "mean", "sum"):
        loss, grad, _ = fast.cross_entropy(x, target, fmt, reduction)
        slow = cross_entropy_rows(x, target, reduction, fmt)
        assert loss.shape == slow[0].shape and grad.shape == slow[1].shape
        assert (loss == slow[0]).all() and (grad == slow[1]).all()


@pytest.mark.parametrize("name", ["bfloat16", "float16", "float32"])
def test_a_tiny_value_of_known_sign_rounds_to_the_same_signed_zero_on_both_paths(name):
    # logits 65504 apart: lp at the maximum and softmax - 1 at a target there are -e**-65504,
    # which the exact path encloses on the negative side and the float64 bound straddles 0
    fmt = FORMATS[name]
    x = np.array([[0.0, -65504.0, -65504.0], [65504.0, 0.0, -65504.0], [1.0, 2.0, 3.0]])
    loss, grad, _ = fast.log_softmax(x, fmt)
    slow_loss, slow_grad = log_softmax_rows(x, fmt)
    assert loss[0, 0] == loss[1, 0] == fmt.sign_bit and (loss == slow_loss).all() and (grad == slow_grad).all()
    target = np.array([0, 0, 1])
    for reduction in ("none", "mean"):
        loss, grad, _ = fast.cross_entropy(x, target, fmt, reduction)
        slow_loss, slow_grad = cross_entropy_rows(x, target, reduction, fmt)
        assert grad[0, 0] == fmt.sign_bit and (loss == slow_loss).all() and (grad == slow_grad).all()


@pytest.mark.slow
def test_fallback_is_taken_naturally_on_a_wide_float32_row():
    # a nearly flat 262144-class row of the large suite: one gradient 1 - C softmax_j cancels
    # to about 5e-4 and lies within 3e-15 of a float32 rounding boundary, so its ends disagree
    from reference import large
    fmt = FORMATS["float32"]
    x64, _ = large._logits("flat", 262144, 5)
    x = to_float64(fast.round_to_format(x64[:1], fmt), fmt)
    loss, grad, fell_back = fast.log_softmax(x, fmt)
    assert fell_back == 1
    slow_loss, slow_grad = log_softmax_rows(x, fmt)
    assert (loss == slow_loss).all() and (grad == slow_grad).all()


@pytest.mark.slow
def test_zero_mismatches_on_a_quarter_million_mixed_elements():
    # a million elements took 3 minutes of the test run; the seed and the mix are the same
    rng = np.random.default_rng(2026)
    checked = 0
    for name in ("bfloat16", "float16", "float32"):
        fmt = FORMATS[name]
        for classes in (3, 64, 1000):
            rows = 2 * max(1, 14500 // classes)
            x = adversarial_rows(fmt, rng, rows, classes)
            loss, grad, _ = fast.log_softmax(x, fmt)
            slow_loss, slow_grad = log_softmax_rows(x, fmt)
            assert (loss == slow_loss).all() and (grad == slow_grad).all(), (name, classes)
            checked += loss.size + grad.size
    assert checked >= 250_000
