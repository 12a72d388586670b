"""The variant bce_grad_eps_1e-12 (torch BCELoss's own gradient formula) and its combination
with the log clamp, against hand-derived values (docs/semantics.md#variants).

torch's gradient is w (p - t) / max(p (1 - p), eps) with eps the float32 constant 1e-12
converted to the tensor's dtype; the canonical gradient is the exact derivative of
-w (t log p + (1 - t) log(1 - p)), i.e. w (-t/p + (1 - t)/(1 - p)), with 0 * inf = 0.
"""
from fractions import Fraction as F

import numpy as np
import pytest

from reference.casefile import parse_cases
from reference.formats import FORMATS, NAN, NEG_INF, POS_INF, decode
from reference.golden import build_case
from reference.ops import OPS
from reference.ops.binary_cross_entropy import binary_cross_entropy
from reference.semantics import CANONICAL, VARIANTS, for_dtype

from .test_reference import LN2, arr, evaluate, rounded

INF, NINF = POS_INF, NEG_INF
GRAD = "bce_grad_eps_1e-12"
BOTH = "log_clamp_100+bce_grad_eps_1e-12"
CLAMP = "log_clamp_100"
# 1e-12 as a float32 (torch: `constexpr float EPSILON = 1e-12`): 1e-12 = 2**-39.86..., so its
# float32 neighbours are 2**-63 apart, and 1e-12 * 2**63 = 9223372.04: 9223372 * 2**-63
# (= 2305843 * 2**-61, 9.99999996e-13)
EPS32 = F(2305843, 2**61)
# that value in bfloat16 (8 significant bits): 2305843 / 2**61 lies between 140 / 2**47 and
# 141 / 2**47 (2305843 / 2**14 = 140.737...), nearer the latter
EPS_BF16 = F(141, 2**47)


def run(p, t, w=None, *, sem, dtype="float64", **kw):
    bound = for_dtype(sem, FORMATS[dtype])
    return evaluate(lambda: binary_cross_entropy(arr(p), arr(t), None if w is None else arr(w), sem=bound, **kw),
                    dtype)


def variant(name):
    return VARIANTS[name]


def test_the_variants_are_registered_for_binary_cross_entropy_only():
    assert VARIANTS[GRAD].bce_grad_formula and not VARIANTS[GRAD].log_clamp
    assert VARIANTS[BOTH].bce_grad_formula and VARIANTS[BOTH].log_clamp
    for name, op in OPS.items():
        listed = {GRAD, BOTH} & set(op.variants)
        assert listed == ({GRAD, BOTH} if name == "binary_cross_entropy" else set()), name


@pytest.mark.parametrize("dtype, eps", [("float64", EPS32), ("float32", EPS32), ("bfloat16", EPS_BF16),
                                        ("float16", F(0))])
def test_the_eps_is_float32s_1e_12_in_the_case_dtype(dtype, eps):
    assert for_dtype(variant(GRAD), FORMATS[dtype]).grad_eps == eps
    assert for_dtype(variant(BOTH), FORMATS[dtype]).grad_eps == eps


def test_inside_the_interval_the_formula_is_the_derivative():
    # p = 1/4, t = 0: (1/4 - 0) / (1/4 * 3/4) = 4/3, and the derivative (1 - t)/(1 - p) = 4/3;
    # p = 1/2, t = 1: (1/2 - 1) / (1/4) = -2 = -t/p
    p, t, w = [[F(1, 4), F(1, 2)]], [[0, 1]], [[3, F(1, 2)]]
    for sem in (CANONICAL, variant(GRAD)):
        out = run(p, t, w, sem=sem, reduction="none")
        assert list(out["grad"][0]) == [rounded(F(4)), -1]  # 3 * 4/3, 1/2 * -2
        out = run(p, t, sem=sem, reduction="mean")
        assert list(out["grad"][0]) == [rounded(F(2, 3)), -1]  # over N = 2


@pytest.mark.parametrize("dtype, eps", [("float64", EPS32), ("float32", EPS32), ("bfloat16", EPS_BF16)])
def test_at_zero_and_one_the_formula_departs_from_the_limits(dtype, eps):
    p = [[0, 0, 1, 1, 0]]
    t = [[0, 1, 1, 0, F(1, 2)]]
    canonical = run(p, t, sem=CANONICAL, dtype=dtype, reduction="none")
    # d/dp of -(t log p + (1-t) log(1-p)) = -t/p + (1-t)/(1-p), a zero coefficient giving 0:
    # p = t = 0: (1-0)/(1-0) = 1; p = 0, t = 1: -1/0 = -inf; p = t = 1: -1/1 = -1;
    # p = 1, t = 0: 1/(1-1) = +inf; p = 0, t = 1/2: -1/2/0 + 1/2 = -inf
    assert list(canonical["grad"][0]) == [1, NINF, -1, INF, NINF]
    assert list(canonical["loss"][0]) == [0, INF, 0, INF, INF]
    out = run(p, t, sem=variant(GRAD), dtype=dtype, reduction="none")
    # (p - t) / max(p (1 - p), eps) with p (1 - p) = 0: 0, -1/eps, 0, 1/eps, -1/2/eps
    assert list(out["grad"][0]) == [0, rounded(-1 / eps, dtype), 0, rounded(1 / eps, dtype),
                                    rounded(F(-1, 2) / eps, dtype)]
    assert list(out["loss"][0]) == list(canonical["loss"][0])  # the loss stays canonical


def test_float16_eps_underflows_to_zero():
    p, t = [[0, 0, 1, 1]], [[0, 1, 1, 0]]
    out = run(p, t, sem=variant(GRAD), dtype="float16", reduction="none")
    # max(0, 0) = 0: (0 - 0)/0 = NaN, (0 - 1)/0 = -inf, (1 - 1)/0 = NaN, (1 - 0)/0 = +inf
    assert list(out["grad"][0]) == [NAN, NINF, NAN, INF]
    # a zero weight multiplies the infinity as torch does: 0 * inf = NaN; a finite quotient times 0 is 0
    out = run([[0, F(1, 2)]], [[1, 1]], [[0, 0]], sem=variant(GRAD), dtype="float16", reduction="none")
    assert list(out["grad"][0]) == [NAN, 0]


def test_capped_where_p_times_one_minus_p_is_below_eps():
    # p = 2**-50, t = 1: p (1 - p) < eps, so (p - 1) / eps, not -1/p = -2**50
    p = F(1, 2**50)
    out = run([[p]], [[1]], sem=variant(GRAD), reduction="none")
    assert out["grad"][0][0] == rounded((p - 1) / EPS32)
    canonical = run([[p]], [[1]], sem=CANONICAL, reduction="none")
    assert canonical["grad"][0][0] == -(2**50)
    # p = 2**-30: p (1 - p) = 2**-30 - 2**-60 > eps (2**-30 is about 9.3e-10): no cap, the derivative
    p = F(1, 2**30)
    out = run([[p]], [[1]], sem=variant(GRAD), reduction="none")
    assert out["grad"][0][0] == -(2**30)


def test_weight_mean_and_label_smoothing():
    # w (p - t) / eps, over N = 2 for mean; p = 0, t = 1, w = 4: -4/eps/2 = -2/eps
    out = run([[0, F(1, 4)]], [[1, 0]], [[4, 3]], sem=variant(GRAD), reduction="mean")
    assert list(out["grad"][0]) == [rounded(-2 / EPS32), rounded(F(2))]  # 3 * 4/3 / 2
    # label smoothing e = 1/2: t' = (1 - e) t + e/2 = 1/4 for t = 0; p = 0: (0 - 1/4) / eps
    out = run([[0]], [[0]], sem=variant(GRAD), reduction="none", label_smoothing=F(1, 2))
    assert out["grad"][0][0] == rounded(F(-1, 4) / EPS32)


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
def test_the_combination_has_the_clamped_loss_and_the_formulas_gradient(dtype):
    p, t = [[0, 0, 1, F(1, 2)]], [[0, 1, 0, 1]]
    both = run(p, t, sem=variant(BOTH), dtype=dtype, reduction="none")
    clamp = run(p, t, sem=variant(CLAMP), dtype=dtype, reduction="none")
    formula = run(p, t, sem=variant(GRAD), dtype=dtype, reduction="none")
    # the clamp: -log 0 = 100 where the coefficient is 1; ln 2 at p = 1/2
    assert list(both["loss"][0]) == [0, 100, 100, rounded(LN2, dtype)] == list(clamp["loss"][0])
    assert list(both["grad"][0]) == list(formula["grad"][0])
    # the clamp alone: a clamped log has gradient 0; p = t = 0 keeps (1-t)/(1-p) = 1
    assert list(clamp["grad"][0]) == [1, 0, 0, -2]
    eps = {"float64": EPS32, "float32": EPS32, "bfloat16": EPS_BF16}.get(dtype)
    expected = [0, rounded(-1 / eps, dtype), rounded(1 / eps, dtype), -2] if eps else [NAN, NINF, INF, -2]
    assert list(both["grad"][0]) == expected


def test_golden_case_stores_the_variants_where_they_separate():
    """Through the generator: p = [0, 1/4], t = [1, 0]. The formula's gradient -1/eps departs from
    the canonical -inf at p = 0 except in float16 (eps = 0: -1/0 = -inf as well); the clamp's loss
    100 departs from +inf in every dtype, so the combination is stored in every dtype."""
    spec, = parse_cases([{"id": "bce-grad-variant", "op": "binary_cross_entropy", "input": [["0", "0.25"]],
                          "target": [["1", "0"]], "reduction": "none"}], "test")
    arrays, entry = build_case(spec)
    for dtype in spec.dtypes:
        names = entry["variants"][dtype]
        assert (GRAD in names) == (dtype != "float16") and BOTH in names and CLAMP in names, (dtype, names)

    def values(dtype, name, output):  # the stored bit patterns, decoded to exact values
        return [decode(FORMATS[dtype], int(b)) for b in arrays[f"expected.{dtype}.{name}.{output}"].reshape(-1)]

    for dtype, eps in (("float64", EPS32), ("float32", EPS32), ("bfloat16", EPS_BF16)):
        # (0 - 1) / eps; (1/4 - 0) / (3/16) = 4/3
        assert values(dtype, GRAD, "grad") == [rounded(-1 / eps, dtype), rounded(F(4, 3), dtype)]
        assert values(dtype, GRAD, "loss") == values(dtype, "canonical", "loss")
        assert values(dtype, "canonical", "grad") == [NINF, rounded(F(4, 3), dtype)]
    for dtype in spec.dtypes:
        assert values(dtype, "canonical", "loss")[0] == INF
        assert values(dtype, BOTH, "loss") == values(dtype, CLAMP, "loss")
        assert values(dtype, BOTH, "loss")[0] == 100
        # the clamp alone: a clamped log has gradient 0
        assert values(dtype, CLAMP, "grad") == [0, rounded(F(4, 3), dtype)]
    for dtype in ("float64", "float32", "bfloat16"):
        assert values(dtype, BOTH, "grad") == values(dtype, GRAD, "grad")
    assert values("float16", BOTH, "grad") == [NINF, rounded(F(4, 3), "float16")]

