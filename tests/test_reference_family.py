"""The rest of the loss family against hand-derived values, at its limits."""
from fractions import Fraction as F

import numpy as np
import pytest

from reference.ops.binary_cross_entropy import binary_cross_entropy
from reference.ops.binary_cross_entropy_with_logits import binary_cross_entropy_with_logits
from reference.ops.cross_entropy import cross_entropy
from reference.ops.log_softmax import log_softmax
from reference.ops.cross_entropy_from_probs import cross_entropy_from_probs
from reference.ops.multilabel_soft_margin_loss import multilabel_soft_margin_loss
from reference.ops.nll_loss import nll_loss
from reference.semantics import CANONICAL, VARIANTS, for_dtype
from reference.losses import DomainError
from reference import rounding
from reference.formats import FORMATS, NAN, NEG_INF, POS_INF, round_fraction

from .test_reference import LN2, arr, evaluate, rounded

INF, NINF = POS_INF, NEG_INF


def run(fn, *args, sem=CANONICAL, dtype="float64", **kw):
    sem = for_dtype(sem, FORMATS[dtype])
    return evaluate(lambda: fn(*args, sem=sem, **kw), dtype)


# --- nll_loss ---------------------------------------------------------------------

def test_nll_picks_the_target_log_probability():
    x = arr([[F(-1, 2), F(-5, 4), -2]])
    out = run(nll_loss, x, np.array([2]), [F(1), F(2), F(1, 2)])
    assert out["loss"] == 2  # -w[y] x[y] = 1, divided by w[y] = 1/2
    assert list(out["grad"][0]) == [0, 0, -1]  # -w[y] / sum w[y]


def test_nll_infinite_log_probabilities():
    out = run(nll_loss, arr([[NINF, F(-1, 2)], [0, NINF]]), np.array([0, 0]), reduction="none")
    assert out["loss"][0] == INF and out["loss"][1] == 0  # -inf off the target contributes 0
    # nll_loss gathers the target's entry: a -inf elsewhere is never multiplied, so the IEEE
    # product cannot arise there; a zero weight on a -inf target entry is multiplied: 0 * inf
    ieee = VARIANTS["zero_times_inf_nan"]
    assert run(nll_loss, arr([[0, NINF]]), np.array([0]), reduction="none", sem=ieee)["loss"][0] == 0
    zero_weight = run(nll_loss, arr([[NINF, 0]]), np.array([0]), [F(0), F(1)], reduction="none", sem=ieee)
    assert zero_weight["loss"][0] == NAN
    assert run(nll_loss, arr([[NINF, 0]]), np.array([0]), [F(0), F(1)], reduction="none")["loss"][0] == 0


def test_nll_reads_the_target_entry_alone():
    """A NaN in another class never reaches the loss (the formula is -w[y] x[y]: implementations
    gather it); at the target it does. Found by xent discover: the reference used to make the
    position NaN, beside a gradient of -w[y]."""
    out = run(nll_loss, arr([[F(-1, 2), NAN], [NAN, F(-3, 4)]]), np.array([0, 0]), reduction="none")
    assert out["loss"][0] == F(1, 2) and out["loss"][1] == NAN
    assert list(out["grad"][0]) == [-1, 0] and list(out["grad"][1]) == [-1, 0]
    # a whole-row product (the IEEE variant without gathering) is what would carry it
    assert run(nll_loss, arr([[F(-1, 2), NAN]]), np.array([0]), reduction="sum")["loss"] == F(1, 2)


# --- cross_entropy_from_probs -------------------------------------------------------

def test_probs_class_index_target_reads_its_entry_alone():
    p = arr([[F(1, 2), NAN, F(1, 4)]])
    out = run(cross_entropy_from_probs, p, np.array([0]), target_kind="index", reduction="none")
    assert out["loss"][0] == rounded(LN2) and list(out["grad"][0]) == [-2, 0, 0]
    on = run(cross_entropy_from_probs, p, np.array([1]), target_kind="index", reduction="none")
    assert on["loss"][0] == NAN
    # a renormalising variant sums the row, NaN included; probability targets multiply every class
    renorm = run(cross_entropy_from_probs, p, np.array([0]), target_kind="index", reduction="none",
                 sem=VARIANTS["renormalize_probs"])
    assert renorm["loss"][0] == NAN
    soft = run(cross_entropy_from_probs, p, arr([[1, 0, 0]]), target_kind="probs", reduction="none")
    assert soft["loss"][0] == NAN


def test_probs_index_and_soft_targets():
    p = arr([[F(1, 4), F(1, 4), F(1, 2)]])
    out = run(cross_entropy_from_probs, p, np.array([2]), target_kind="index")
    assert out["loss"] == rounded(LN2)
    assert list(out["grad"][0]) == [0, 0, -2]  # -1 / p_y
    soft = run(cross_entropy_from_probs, p, arr([[0, F(1, 2), F(1, 2)]]), target_kind="probs")
    assert soft["loss"] == rounded(F(3, 2) * LN2)  # (ln 4 + ln 2) / 2


def test_probs_zero_probability():
    p = arr([[0, F(1, 2), F(1, 2)]])
    assert run(cross_entropy_from_probs, p, np.array([1]), target_kind="index")["loss"] == rounded(LN2)
    on = run(cross_entropy_from_probs, p, np.array([0]), target_kind="index")
    assert on["loss"] == INF and on["grad"][0][0] == NINF


def test_probs_renormalize_and_clip_variants():
    p = arr([[F(1, 8), F(1, 8), F(1, 4)]])  # mass 1/2
    canonical = run(cross_entropy_from_probs, p, np.array([2]), target_kind="index")
    assert canonical["loss"] == rounded(2 * LN2)
    renorm = run(cross_entropy_from_probs, p, np.array([2]), target_kind="index",
                 sem=VARIANTS["renormalize_probs"])
    assert renorm["loss"] == rounded(LN2)
    # d/dp_j [-log(p_2 / S)] = -[j == 2] / p_2 + 1 / S
    assert list(renorm["grad"][0]) == [2, 2, -2]
    clip = run(cross_entropy_from_probs, arr([[0, 1]]), np.array([0]), target_kind="index",
               sem=VARIANTS["clip_eps_1e-7"])
    assert float(clip["loss"]) == pytest.approx(16.11809565095832, rel=1e-15)  # -ln(1e-7)


def test_a_renormalised_gradient_is_conditioned_by_the_terms_that_cancel():
    """q = p / S, loss -log q_0: dL/dp_0 = 1/S - 1/p_0, two terms of size about 1 whose
    difference is -1/2047 at p = [2047/2048, 1/2048]. Its condition scale counts the terms
    (2048/2047 + 1), times 2 (1 + ceil(log2 2)), not the 1/2047 left of them; the canonical
    gradient -1/p_0 has no difference to cancel."""
    p, y = arr([[F(2047, 2048), F(1, 2048)]]), np.array([0])
    sem = for_dtype(VARIANTS["renormalize_probs"], FORMATS["float32"])
    renorm = cross_entropy_from_probs(p, y, target_kind="index", reduction="none", sem=sem)
    assert float(renorm.grad_cond[0][0]) == pytest.approx(4 * (F(2048, 2047) + 1), rel=1e-15)
    assert float(renorm.grad_cond[0][1]) == 4  # 0/S + |dot|/S: q_0 |1/q_0| = 1
    canonical = cross_entropy_from_probs(p, y, target_kind="index", reduction="none",
                                         sem=for_dtype(CANONICAL, FORMATS["float32"]))
    assert float(canonical.grad_cond[0][0]) == pytest.approx(4 * F(2048, 2047), rel=1e-15)


def test_clip_bounds_follow_the_dtype():
    f16 = for_dtype(VARIANTS["clip_eps_1e-7"], FORMATS["float16"])
    assert f16.clip == (F(2, 2**24), F(1))  # 1e-7 is a float16 subnormal; 1 - 1e-7 rounds to 1
    f32 = for_dtype(VARIANTS["clip_eps_1e-7"], FORMATS["float32"])
    assert f32.clip[1] == 1 - F(1, 2**23)


def test_probs_outside_unit_interval_is_a_domain_error():
    with pytest.raises(DomainError):
        cross_entropy_from_probs(arr([[F(3, 2), 0]]), np.array([0]), target_kind="index")


# --- binary_cross_entropy ---------------------------------------------------------------

def test_bce_values_and_limits():
    p = arr([[F(1, 2), F(1, 2), 0, 0, 1]])
    t = arr([[1, 0, 1, 0, 1]])
    out = run(binary_cross_entropy, p, t, reduction="none")
    assert list(out["loss"][0]) == [rounded(LN2), rounded(LN2), INF, 0, 0]
    assert list(out["grad"][0])[:2] == [-2, 2]  # -t/p + (1-t)/(1-p)
    clamp = run(binary_cross_entropy, p, t, reduction="none", sem=VARIANTS["log_clamp_100"])
    assert clamp["loss"][0][2] == 100


def test_bce_gradient_is_conditioned_by_its_two_quotients():
    """-t/p + (1 - t)/(1 - p) at p = 1/2, t = 1/2 + 2^-11: -2^-9 left of two terms near 1 (each
    1 - 2^-10 or 1 + 2^-10): the scale is 4 (2t + 2(1 - t)) = 8; torch's single quotient
    (p - t) / (p (1 - p)) keeps its own size, 4 |g| = 2^-7."""
    p, t = arr([F(1, 2)]), arr([F(1, 2) + F(1, 2048)])
    quotients = binary_cross_entropy(p, t, reduction="none", sem=for_dtype(CANONICAL, FORMATS["float32"]))
    assert float(quotients.grad_cond[0]) == 8
    torch_formula = next(v for v in VARIANTS.values() if v.bce_grad_formula)
    single = binary_cross_entropy(p, t, reduction="none", sem=for_dtype(torch_formula, FORMATS["float32"]))
    assert float(single.grad_cond[0]) == 2 ** -7


def test_a_mean_of_exact_terms_on_a_midpoint_rounds_to_even():
    # found by the search: p = 0, t = 1 smoothed by e = 1023/1024 (t' = 1025/2048), w = 1/2,
    # log clamped at -100: the gradient of -w (1 - t') log(1 - p) is w (1 - t') = 1023/4096,
    # divided by 3 for the mean: 341/4096, exactly a bfloat16 midpoint (9 significant bits).
    # Multiplying by 1/3 as a ball never gives an exact value; 1023 / 3 does: ties to even, 340/4096.
    out = run(binary_cross_entropy, arr([0, 0, 0]), arr([0, 0, 1]), arr([F(1, 2)] * 3), label_smoothing=F(1023, 1024),
              reduction="mean", sem=VARIANTS["log_clamp_100"], dtype="bfloat16")
    assert out["grad"][2] == F(340, 4096)


def test_an_exact_sigmoid_in_a_mean_on_a_midpoint_rounds_to_even():
    # found by the search: at x = 0 sigmoid is exactly 1/2 (kept as 1 - 1/2); t = 1 smoothed by
    # e = 1023/1024 and pos_weight 0 leave the gradient b sigmoid(0) = (1023/2048) / 2 per
    # element, divided by 3 for the mean: 341/4096, a bfloat16 midpoint: ties to even, 340/4096
    out = run(binary_cross_entropy_with_logits, arr([0, 0, 0]), arr([1, 1, 1]), None, arr([0, 0, 0]),
              label_smoothing=F(1023, 1024), reduction="mean", dtype="bfloat16")
    assert list(out["grad"]) == [F(340, 4096)] * 3


def test_exact_rationals_that_cancel_stay_exact_on_a_midpoint():
    # found by the search: equal logits make softmax exactly 1/3; with label smoothing 1/4 over
    # 3 classes the unit-mass gradient s - a is 1/3 - (3/4 t + 1/12): the thirds cancel, and
    # t = 1 - 2**-24 leaves -(2**25 - 3) / 2**26, a float32 midpoint: ties to even gives
    # -(2**24 - 2) / 2**25 (1/12 as a ball would never cancel exactly)
    out = run(cross_entropy, arr([[0, 0, 0]]), arr([[1 - F(1, 2**24), 0, 0]]), None, target_kind="probs",
              label_smoothing=F(1, 4), reduction="sum", sem=VARIANTS["unit_target_mass_grad"], dtype="float32")
    assert out["grad"][0][0] == -F(2**24 - 2, 2**25)


def test_bce_weight_and_mean_over_last_axis_first():
    p = arr([[F(1, 2), F(1, 2)], [F(1, 2), F(1, 2)]])
    t = arr([[1, 0], [1, 1]])
    w = arr([[2, 0], [1, 1]])
    assert run(binary_cross_entropy, p, t, w, reduction="sum")["loss"] == rounded(4 * LN2)
    folded = run(binary_cross_entropy, p, t, reduction="none", sem=VARIANTS["mean_last_axis_first"])
    assert folded["loss"].shape == (2,) and (folded["loss"] == rounded(LN2)).all()
    assert folded["grad"].shape == (2, 2)


@pytest.mark.parametrize("p, t", [(F(3, 2), 1), (F(-1, 4), 0), (F(1, 2), F(3, 2)), (F(1, 2), F(-1, 2))])
def test_bce_domain(p, t):
    with pytest.raises(DomainError):
        binary_cross_entropy(arr([[p]]), arr([[t]]))


# --- binary_cross_entropy_with_logits and multilabel_soft_margin_loss -------------------

def test_bce_with_logits_at_zero_and_pos_weight():
    out = run(binary_cross_entropy_with_logits, arr([[0, 0]]), arr([[1, 0]]), reduction="none")
    assert (out["loss"] == rounded(LN2)).all()
    assert list(out["grad"][0]) == [F(-1, 2), F(1, 2)]  # sigmoid(0) - t
    pw = run(binary_cross_entropy_with_logits, arr([[0]]), arr([[1]]), None, arr([3]), reduction="none")
    assert pw["loss"][0][0] == rounded(3 * LN2) and pw["grad"][0][0] == F(-3, 2)


def test_bce_with_logits_infinite_limits():
    x = arr([[INF, INF, NINF, NINF, NINF]])
    t = arr([[1, F(1, 2), 0, 1, 1]])
    out = run(binary_cross_entropy_with_logits, x, t, None, arr([1, 1, 1, 1, 0]), reduction="none")
    assert list(out["loss"][0]) == [0, INF, 0, INF, 0]  # pos_weight 0 kills the infinite term
    assert list(out["grad"][0]) == [0, F(1, 2), 0, -1, 0]


def test_bce_with_logits_on_a_float32_midpoint_rounds_by_the_exponentially_small_terms():
    # x = 2**61: softplus(x) = x + log1p(e**-x), softplus(-x) = log1p(e**-x), with e**-x =
    # e**-(2**61) far below any working precision. With t = [7/8, 3/8, 13/16], w = [2**-24, 1,
    # 1/2] the loss's exact part is sum w (1 - t) x = 2**34 + (23/32) 2**61, and the mean over
    # the last axis divides it by 3: 32156331 * 2**34, a float32 midpoint (25 significant bits,
    # the last one set), plus a positive remainder: it rounds up to 32156332 * 2**34.
    x = arr([F(2**61)] * 3)
    out = run(binary_cross_entropy_with_logits, x, arr([F(7, 8), F(3, 8), F(13, 16)]), arr([F(1, 2**24), 1, F(1, 2)]),
              reduction="none", sem=VARIANTS["mean_last_axis_first"], dtype="float32")
    assert out["loss"] == 32156332 * 2**34
    # the gradient B sigmoid(x) - A sigmoid(-x) = B - (A + B) sigmoid(-x), B = w (1 - t): with
    # w = 1 + 2**-23 and t = 1/4, B = 3/4 (1 + 2**-23) = 25165827 * 2**-25 is a midpoint and the
    # remainder is negative: 25165826 * 2**-25, where ties to even would give 25165828 * 2**-25
    one = run(binary_cross_entropy_with_logits, arr([F(2**61)]), arr([F(1, 4)]), arr([1 + F(1, 2**23)]),
              reduction="sum", dtype="float32")
    assert one["grad"][0] == F(25165826, 2**25)
    assert one["loss"] == F(25165828, 2**25) * 2**61  # B x + (A + B) log1p(e**-x): up


def test_cross_entropy_on_a_midpoint_rounds_by_the_other_classes_share():
    # logits [2**61, 0], probability targets t = [1/4, B] with B = 3/4 (1 + 2**-23): the loss is
    # B 2**61 + (1/4 + B) log1p(e**-(2**61)), a float32 midpoint plus a positive remainder; the
    # gradient (1/4 + B) softmax - t is B - ... below the midpoint B, -B + ... above -B
    b = F(3, 4) * (1 + F(1, 2**23))
    out = run(cross_entropy, arr([[F(2**61), 0]]), arr([[F(1, 4), b]]), None, target_kind="probs",
              reduction="sum", dtype="float32")
    assert out["loss"] == F(25165828, 2**25) * 2**61
    assert list(out["grad"][0]) == [F(25165826, 2**25), -F(25165826, 2**25)]


def test_log_softmax_far_below_the_maximum_keeps_the_sign_of_a_tiny_value():
    # lp at the maximum is -log1p(e**-(2**100)): a negative value that rounds to -0
    # (the sign of zero is not part of the contract, but the golden files hold correct roundings)
    fmt = FORMATS["float32"]
    lp = log_softmax(arr([[0, -F(2**100)]])).loss
    assert rounding.round_value(fmt, lp[0][0]) == fmt.sign_bit
    assert rounding.round_value(fmt, lp[0][1]) == round_fraction(fmt, -F(2**100))


def test_binary_label_smoothing_pulls_toward_one_half():
    out = run(binary_cross_entropy_with_logits, arr([[0]]), arr([[1]]), label_smoothing=F(1, 2), reduction="none")
    assert out["loss"][0][0] == rounded(LN2) and out["grad"][0][0] == F(-1, 4)  # t' = 3/4


def test_bce_with_logits_target_outside_unit_interval_is_a_domain_error():
    with pytest.raises(DomainError):
        binary_cross_entropy_with_logits(arr([[0]]), arr([[F(3, 2)]]))


def test_multilabel_soft_margin_averages_classes_then_rows():
    out = run(multilabel_soft_margin_loss, arr([[0, 0], [0, 0]]), arr([[1, 0], [0, 0]]), reduction="none")
    assert out["loss"].shape == (2,) and (out["loss"] == rounded(LN2)).all()
    weighted = run(multilabel_soft_margin_loss, arr([[0, 0]]), arr([[1, 0]]), [F(2), F(0)])
    assert weighted["loss"] == rounded(LN2)  # (2 ln 2 + 0) / 2
    assert list(weighted["grad"][0]) == [F(-1, 2), 0]
