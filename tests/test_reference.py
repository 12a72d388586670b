"""The reference against hand-derived values: logs of small integers known to many digits,
exact dyadic results, and every special-value rule of docs/semantics.md."""
from fractions import Fraction as F

import numpy as np
import pytest

from reference import rounding
from reference.ops.cross_entropy import cross_entropy
from reference.ops.log_softmax import log_softmax
from reference.semantics import CANONICAL, VARIANTS
from reference.losses import DomainError
from reference import extended as ex
from reference.extended import PrecisionTooLow, Split, to_float
from reference.formats import FORMATS, NAN, NEG_INF, POS_INF, decode, round_fraction
from flint import arb

# ln 2, ln 3 to 40 digits (OEIS A002162, A002391): hand-derived constants, not a framework
LN2 = F("0.6931471805599453094172321214581765680755")
LN3 = F("1.0986122886681096913952452369225257046475")
INF, NINF = POS_INF, NEG_INF


def arr(rows):
    a = np.empty(np.shape(rows), dtype=object) if np.ndim(rows) else None
    flat = [v if isinstance(v, str) else F(v) for v in np.array(rows, dtype=object).reshape(-1)]
    a = np.empty(len(flat), dtype=object)
    a[:] = flat
    return a.reshape(np.shape(rows))


def evaluate(compute, dtype="float64"):
    """Correctly rounded outputs, decoded back to exact values (Fraction or special)."""
    fmt = FORMATS[dtype]
    (out, _), _ = rounding.with_precision(compute, lambda o: ({k: rounding.round_array(fmt, getattr(o, k))
                                                               for k in ("loss", "grad")}, o))
    return {k: np.vectorize(lambda b: decode(fmt, int(b)), otypes=[object])(v) for k, v in out.items()}


def rounded(q, dtype="float64"):
    return decode(FORMATS[dtype], round_fraction(FORMATS[dtype], q))


def ce(x, target, **kw):
    kind = kw.pop("target_kind", "index")
    tgt = np.array(target) if kind == "index" else arr(target)
    return evaluate(lambda: cross_entropy(arr(x), tgt, kw.pop("weight", None), target_kind=kind, **kw))


def ls(x, sem=CANONICAL):
    return evaluate(lambda: log_softmax(arr(x), sem))


# --- log_softmax ---------------------------------------------------------------------

def test_log_softmax_uniform_rows():
    out = ls([[0, 0], [5, 5]])
    assert (out["loss"] == rounded(-LN2)).all()
    assert (out["grad"] == 0).all()  # d/dx_j sum_c lp_c = 1 - C * s_j = 1 - 2 * 1/2
    out = ls([[-7, -7, -7]])
    assert (out["loss"] == rounded(-LN3)).all()


@pytest.mark.parametrize("dtype", list(FORMATS))
def test_log_softmax_rounds_directly_to_each_dtype(dtype):
    out = evaluate(lambda: log_softmax(arr([[1, 1, 1]])), dtype)
    assert (out["loss"] == rounded(-LN3, dtype)).all()


def test_log_softmax_shift_invariance_is_exact():
    # [0, ln 3]-free check: x and x + 2**40 give the same exact rounded result
    a, b = ls([[0, 1, 3]]), ls([[2**40, 2**40 + 1, 2**40 + 3]])
    assert (a["loss"] == b["loss"]).all()


def test_nan_row_is_nan_everywhere():
    out = ls([[0, NAN, 1], [0, 0, 0]])
    assert all(v == NAN for v in out["loss"][0]) and all(v == NAN for v in out["grad"][0])
    assert (out["loss"][1] == rounded(-LN3)).all()


def test_one_pos_inf_takes_the_limit():
    out = ls([[1, INF, 0]])
    assert list(out["loss"][0]) == [NINF, 0, NINF]
    assert list(out["grad"][0]) == [1, -2, 1]  # 1 - 3 * onehot


def test_two_pos_inf_are_indeterminate():
    out = ls([[INF, 0, INF]])
    assert list(out["loss"][0]) == [NAN, NINF, NAN]


def test_neg_inf_entries_and_all_neg_inf():
    out = ls([[NINF, 0, 0], [NINF, NINF, NINF]])
    assert out["loss"][0][0] == NINF and out["loss"][0][1] == rounded(-LN2)
    assert all(v == NAN for v in out["loss"][1])


def test_max_shift_variant_makes_rows_with_an_infinite_maximum_nan():
    shifted = VARIANTS["max_shift_inf_nan"]
    out = ls([[1, INF, 0], [NINF, 0, 0], [0, 1, 3]], shifted)
    assert all(v == NAN for v in out["loss"][0]) and all(v == NAN for v in out["grad"][0])  # inf - inf
    assert out["loss"][1][0] == NINF and out["loss"][1][1] == rounded(-LN2)  # finite maximum: as canonical
    assert list(out["loss"][2]) == list(ls([[0, 1, 3]])["loss"][0])
    assert list(ls([[INF], [NINF], [3]], shifted)["loss"][:, 0]) == [NAN, NAN, 0]  # C = 1: x - x


def test_class_index_targets_gather_so_zero_times_inf_needs_smoothing():
    """[inf, 0, 1], target 0: the limit is a loss of 0. The IEEE product cannot explain a NaN
    here (nothing is multiplied by a zero coefficient); subtracting the row maximum can."""
    x, t = [[INF, 0, 1]], [0]
    assert ce(x, t, reduction="none")["loss"][0] == 0
    ieee = evaluate(lambda: cross_entropy(arr(x), np.array(t), target_kind="index", reduction="none",
                                          sem=VARIANTS["zero_times_inf_nan"]))
    assert ieee["loss"][0] == 0
    shifted = evaluate(lambda: cross_entropy(arr(x), np.array(t), target_kind="index", reduction="none",
                                             sem=VARIANTS["max_shift_inf_nan"]))
    assert shifted["loss"][0] == NAN
    # with smoothing every class's log-probability is multiplied by e/C w_c: a zero class weight
    # on the -inf class makes that product 0 * inf
    smoothed = evaluate(lambda: cross_entropy(arr([[0, NINF]]), np.array([0]), [F(1), F(0)], target_kind="index",
                                              label_smoothing=F(1, 2), reduction="none",
                                              sem=VARIANTS["zero_times_inf_nan"]))
    assert smoothed["loss"][0] == NAN


def test_one_class_is_zero_even_at_infinities():
    out = ls([[3], [INF], [NINF], [NAN]])
    assert list(out["loss"][:, 0]) == [0, 0, 0, NAN]


def test_huge_spread_is_exact():
    big = F(2) ** 1023
    out = ls([[big, 0]])
    assert out["loss"][0][0] == 0  # -log(1 + exp(-2**1023)) rounds to -0
    assert out["loss"][0][1] == -big


# --- cross_entropy, class indices ------------------------------------------------------

def test_ce_uniform_row_is_log_c():
    for reduction in ("none", "sum", "mean"):
        out = ce([[0, 0, 0, 0]], [2], reduction=reduction)
        assert (out["loss"] == rounded(2 * LN2)).all()


def test_ce_gradient_is_softmax_minus_onehot():
    out = ce([[0, 0]], [0], reduction="sum")
    assert list(out["grad"][0]) == [F(-1, 2), F(1, 2)]


def test_ce_weighted_mean_divides_by_weight_sum():
    x, t, w = [[0, 0], [0, 0]], [0, 1], [F(1), F(3)]
    assert ce(x, t, weight=w, reduction="mean")["loss"] == rounded(LN2)
    assert ce(x, t, weight=w, reduction="sum")["loss"] == rounded(4 * LN2)
    by_count = evaluate(lambda: cross_entropy(arr(x), np.array(t), w, target_kind="index",
                                                  sem=VARIANTS["mean_by_count"]))
    assert by_count["loss"] == rounded(2 * LN2)  # (1 + 3) ln 2 / 2 positions


def test_ce_label_smoothing_weights_the_smoothing_term():
    e = F(1, 4)
    w = [F(1), F(2), F(4)]
    out = ce([[0, 0, 0]], [1], weight=w, label_smoothing=e, reduction="sum")
    # (1-e) w[y] ln3 + (e/C) sum_c w_c ln3
    assert out["loss"] == rounded(((1 - e) * 2 + e / 3 * 7) * LN3)


def test_ce_ignore_index_zeroes_loss_gradient_and_denominator():
    out = ce([[0, 0], [5, -3]], [1, -100], reduction="none")
    assert out["loss"][0] == rounded(LN2) and out["loss"][1] == 0
    assert list(out["grad"][1]) == [0, 0]
    assert ce([[0, 0], [5, -3]], [1, -100])["loss"] == rounded(LN2)
    assert ce([[0, 0], [0, 0]], [1, 7], ignore_index=7)["loss"] == rounded(LN2)


def test_ce_ignored_row_of_neg_inf_has_zero_gradient():
    out = ce([[NINF, NINF], [0, 0]], [-100, 0], reduction="sum")
    assert list(out["grad"][0]) == [0, 0]


def test_ce_empty_mean_is_nan_and_variant_gives_zero():
    x, t = [[0, 0], [1, 2]], [-100, -100]
    out = ce(x, t)
    assert out["loss"] == NAN
    assert (out["grad"] == 0).all()  # ignored positions
    zero = evaluate(lambda: cross_entropy(arr(x), np.array(t), target_kind="index",
                                              sem=VARIANTS["empty_mean_zero"]))
    assert zero["loss"] == 0
    assert ce(x, t, reduction="sum")["loss"] == 0


def test_ce_zero_weight_targets_mean_is_nan():
    assert ce([[0, 0]], [0], weight=[F(0), F(1)])["loss"] == NAN


def test_ce_empty_batch():
    x = np.empty((0, 3), dtype=object)
    out = evaluate(lambda: cross_entropy(x, np.zeros((0,), dtype=np.int64), target_kind="index"))
    assert out["loss"] == NAN and out["grad"].shape == (0, 3)


def test_ce_kdim_positions_and_class_axis():
    x = [[[0, 5], [0, 5]]]  # (N=1, C=2, d=2): position 0 uniform, position 1 uniform
    out = ce(x, [[1, 0]], reduction="none")
    assert out["loss"].shape == (1, 2) and (out["loss"] == rounded(LN2)).all()
    assert out["grad"].shape == (1, 2, 2)


def test_ce_target_neg_inf_is_infinite():
    out = ce([[NINF, 0]], [0], reduction="none")
    assert out["loss"][0] == INF
    assert list(out["grad"][0]) == [-1, 1]  # the limit of s - onehot


@pytest.mark.parametrize("target", [2, -1, -3])
def test_ce_out_of_range_target_is_a_domain_error(target):
    with pytest.raises(DomainError):
        cross_entropy(arr([[0, 0]]), np.array([target]), target_kind="index")


def test_ce_label_smoothing_outside_unit_interval_is_a_domain_error():
    with pytest.raises(DomainError):
        cross_entropy(arr([[0, 0]]), np.array([0]), target_kind="index", label_smoothing=F(3, 2))


# --- cross_entropy, probabilities ----------------------------------------------------

def test_ce_probs_uniform_logits():
    out = ce([[0, 0]], [[F(1, 4), F(3, 4)]], target_kind="probs")
    assert out["loss"] == rounded(LN2)


def test_ce_probs_mean_divides_by_positions_not_weights():
    w = [F(2), F(2)]
    out = ce([[0, 0], [0, 0]], [[1, 0], [0, 1]], weight=w, target_kind="probs")
    assert out["loss"] == rounded(2 * LN2)


def test_ce_probs_zero_target_on_neg_inf_logit_is_finite():
    out = ce([[NINF, 0, 0]], [[0, F(1, 2), F(1, 2)]], target_kind="probs", reduction="none")
    assert out["loss"][0] == rounded(LN2)
    ieee = evaluate(lambda: cross_entropy(arr([[NINF, 0, 0]]), arr([[0, F(1, 2), F(1, 2)]]),
                                              target_kind="probs", reduction="none",
                                              sem=VARIANTS["zero_times_inf_nan"]))
    assert ieee["loss"][0] == NAN


def test_ce_probs_unnormalised_rows_use_the_formula_as_written():
    out = ce([[0, 0]], [[1, 1]], target_kind="probs", reduction="sum")
    assert out["loss"] == rounded(2 * LN2)
    assert list(out["grad"][0]) == [0, 0]  # A s - a = 2 * 1/2 - 1
    unit = evaluate(lambda: cross_entropy(arr([[0, 0]]), arr([[1, 1]]), target_kind="probs",
                                              reduction="sum", sem=VARIANTS["unit_target_mass_grad"]))
    assert list(unit["grad"][0]) == [F(-1, 2), F(-1, 2)]  # s - t


# --- rounding machinery ----------------------------------------------------------------

def test_enclosure_straddling_a_midpoint_asks_for_more_precision():
    fmt = FORMATS["float32"]
    mid = arb(1) + arb(2) ** -24  # halfway between 1 and its float32 successor
    with pytest.raises(PrecisionTooLow):
        rounding.round_value(fmt, mid + arb(0, 2.0 ** -60))


def test_ziv_loop_raises_precision_until_decided():
    fmt = FORMATS["float32"]
    calls = []

    def compute():
        calls.append(rounding.ctx.prec)
        # a value 2**-200 above the midpoint: undecidable below ~200 bits
        return arb(1) + arb(2) ** -24 + arb(2) ** -200

    bits, used = rounding.with_precision(compute, lambda v: rounding.round_value(fmt, v))
    assert bits == round_fraction(fmt, 1 + F(1, 2**24) + F(1, 2**200))
    assert used > rounding.START_BITS and calls == sorted(calls)


# --- a value on a rounding midpoint plus a remainder no precision resolves ---------------

MID32 = 1 + F(1, 2**24)  # halfway between 1 and its float32 successor (1 + 2**-23)


def test_a_midpoint_plus_a_remainder_rounds_by_the_remainders_sign():
    fmt = FORMATS["float32"]
    tiny = (-arb(2) ** 61).exp()  # e**-(2**61): no working precision separates 1 + 2**-24 + tiny from the midpoint
    assert rounding.round_value(fmt, Split(MID32, tiny)) == round_fraction(fmt, 1 + F(1, 2**23))
    assert rounding.round_value(fmt, Split(MID32, -tiny)) == round_fraction(fmt, F(1))
    # ties to even would give 1 + 2**-22 here; the remainder's sign gives the neighbour below
    odd_mid = 1 + F(3, 2**24)
    assert rounding.round_value(fmt, Split(odd_mid, -tiny)) == round_fraction(fmt, 1 + F(1, 2**23))
    assert rounding.round_value(fmt, Split(odd_mid, arb(0))) == round_fraction(fmt, 1 + F(2, 2**23))  # an exact tie


def test_a_remainder_decides_at_the_overflow_threshold_and_among_subnormals():
    fmt = FORMATS["float16"]
    tiny = (-arb(2) ** 40).exp()
    threshold = 65504 + F(16)  # halfway between the largest float16 and 2**16: rounds to inf
    assert rounding.round_value(fmt, Split(threshold, -tiny)) == round_fraction(fmt, F(65504))
    assert rounding.round_value(fmt, Split(threshold, tiny)) == round_fraction(fmt, POS_INF)
    sub_mid = F(3, 2**25)  # halfway between the first two float16 subnormals 2**-24 and 2**-23
    assert rounding.round_value(fmt, Split(sub_mid, tiny)) == round_fraction(fmt, F(2, 2**24))
    assert rounding.round_value(fmt, Split(sub_mid, -tiny)) == round_fraction(fmt, F(1, 2**24))


def test_a_remainder_of_unknown_sign_or_a_midpoint_far_from_main_asks_for_more_precision():
    fmt = FORMATS["float32"]
    with pytest.raises(PrecisionTooLow):  # the remainder's ball holds 0: its sign is unknown
        rounding.round_value(fmt, Split(MID32, arb(0, 2.0 ** -80)))
    with pytest.raises(PrecisionTooLow):  # main is no midpoint: the remainder carries the value onto one
        rounding.round_value(fmt, Split(F(1), arb(2) ** -24 + arb(0, 2.0 ** -60)))
    with pytest.raises(rounding.RoundingUndecided):  # the same value as one ball: the Ziv loop never ends
        rounding.with_precision(lambda: ex.exact(MID32) + (-arb(2) ** 61).exp(), lambda v: rounding.round_value(fmt, v))


def test_split_arithmetic_keeps_the_exact_part_apart():
    tiny = (-arb(2) ** 61).exp()
    a = Split(F(3, 4), tiny)
    b = (a * 2 - F(1, 2)) / 4 + arb(0)  # exact steps keep the split; an exact ball counts as exact
    assert isinstance(b, Split) and b.main == F(1, 4) and b.rest > 0 and (b.rest - tiny / 2).contains(0)
    c = 1 - a  # int - Split
    assert c.main == F(1, 4) and c.rest < 0
    assert ex.sign(Split(F(0), -tiny)) == -1 and ex.sign(Split(F(-1), tiny)) == -1
    assert isinstance(a / 3, Split) and (a / 3).main == F(1, 4)  # division by an exact rational stays exact
    assert not isinstance(a * (arb(1) / 3), Split)  # a product with an inexact ball falls back to the ball


def test_condition_scales_bound_the_values():
    out = cross_entropy(arr([[0.5, -1.25, 2], [3, 1, -2.5]]), np.array([2, 0]), target_kind="index",
                            reduction="none")
    for value, cond in zip(out.loss.reshape(-1), out.loss_cond.reshape(-1)):
        assert cond >= abs(to_float(value)) > 0
