"""Binary cross-entropy on probabilities, elementwise
(docs/semantics.md#binary_cross_entropy-probabilities-p-targets-t-elementwise-weight-w)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .. import extended as ex, levels as lv
from ..formats import NAN, NEG_INF, POS_INF
from ..losses import (Outputs, Position, binary_targets, broadcast, cap, check_unit_interval, clip_probability,
                      finish_elements, log_probability, mag)
from ..op import Op, OpFields
from ..semantics import CANONICAL, Semantics


def binary_cross_entropy(p: np.ndarray, target: np.ndarray, weight=None, *, label_smoothing: Fraction = Fraction(0),
                         reduction: str = "mean", sem: Semantics = CANONICAL) -> Outputs:
    """-w (t log p + (1-t) log(1-p)), elementwise; log 0 = -inf, 0 * inf = 0."""
    check_unit_interval("probability", p)
    t = binary_targets(target, label_smoothing)
    w = broadcast(weight, p.shape)
    positions = []
    for pv, tv, wv in zip(p.reshape(-1), t.reshape(-1), w.reshape(-1)):
        if isinstance(pv, str):
            positions.append(Position(NAN, 0.0, [NAN], [0.0], Fraction(1)))
            continue
        q, passes_grad = clip_probability(pv, sem) if "clip" in sem.prob_transforms else (pv, True)
        a, b = wv * tv, wv * (1 - tv)  # coefficients of -log q and -log(1 - q)
        (log_q, clamp_q), (log_r, clamp_r) = log_probability(q, sem), log_probability(1 - q, sem)
        loss = ex.add(ex.scale(a, ex.neg(log_q), sem.zero_times_inf_nan),
                      ex.scale(b, ex.neg(log_r), sem.zero_times_inf_nan))
        cond = cap(abs(float(a)) * (mag(log_q) + 1) + abs(float(b)) * (mag(log_r) + 1))

        def part(coef, v, clamped, sign):  # d/dq of -coef * log(v), v = q or 1 - q
            if coef == 0 or clamped:
                return ex.ZERO
            if v == 0:
                return NEG_INF if coef * sign > 0 else POS_INF
            return ex.rational(-coef * sign / v)

        if not passes_grad:
            g, terms_mag = ex.ZERO, 0.0
        elif sem.bce_grad_formula:  # (q - t) / (q (1 - q)): one quotient, no cancelling terms
            g = torch_grad(q, tv, wv, sem)
            terms_mag = mag(g)
        else:  # -a / q + b / (1 - q): two quotients that cancel where q is near t; the errors
            # of computing them scale with their size, not with what is left
            parts = part(a, q, clamp_q, 1), part(b, 1 - q, clamp_r, -1)
            g = ex.add(*parts)
            terms_mag = mag(parts[0]) + mag(parts[1])
        positions.append(Position(loss, cond, [g], [cap(4 * max(mag(g), terms_mag))], Fraction(1)))
    return finish_elements(positions, p, reduction, sem, sem.mean_last_axis_first)


def torch_grad(q: Fraction, t: Fraction, w: Fraction, sem: Semantics):
    """torch's own BCELoss gradient (aten/src/ATen/native/Loss.cpp, binary_cross_entropy_backward),
    not the derivative of its loss: w (q - t) / max(q (1 - q), eps), eps = the float32 constant 1e-12
    as the dtype holds it (sem.grad_eps, bound by for_dtype). It equals the exact derivative wherever
    q (1 - q) >= eps; it is 0 where q = t in {0, 1} and capped where q (1 - q) < eps. In float16
    eps is 0: q in {0, 1} gives (q - t) / 0, +-inf, or NaN where q = t; torch then multiplies by
    the weight, so a zero weight times that infinity is NaN."""
    if sem.grad_eps is None:
        raise ValueError(f"{sem.name}: the gradient's eps is bound per dtype; use semantics.for_dtype")
    denominator = max(q * (1 - q), sem.grad_eps)
    if denominator == 0:
        quotient = NAN if q == t else POS_INF if q > t else NEG_INF
    else:
        quotient = ex.rational((q - t) / denominator)
    return ex.scale(w, quotient, zero_times_inf_nan=True)


def catalog() -> list[dict]:
    out = [lv.case(f"cat-bce-{name}", "binary_cross_entropy", [f"p:{name}"], input=[[v, v, v]],
                   target=[["0", "1", "0.5"]], reduction="none") for name, v in lv.PROB_VALUES.items()]
    x = [["0.25", "0.75", "0.5"], ["0.125", "0.875", "0.0625"]]
    for red in lv.REDUCTIONS:
        out.append(lv.case(f"cat-bce-mixed-{red}", "binary_cross_entropy", ["p:mixed"], input=x,
                           target=lv.BINARY_TARGETS, reduction=red))
        out.append(lv.case(f"cat-bce-weighted-{red}", "binary_cross_entropy", ["weight:elementwise"], input=x,
                           target=lv.BINARY_TARGETS, weight=[["1", "4", "0.25"], ["2", "0", "1"]], reduction=red))
    for name, (p, t) in lv.DOMAIN.items():
        out.append(lv.case(f"cat-bce-{name}", "binary_cross_entropy", ["domain"], input=[[p, "0.5"]],
                           target=[[t, "1"]]))
    return out + lv.shape_tables("bce", lambda shape: dict(op="binary_cross_entropy", input=lv.filled(shape, 2, "prob"),
                                                           target=lv.filled(shape, 1, "binary")))


OP = Op(
    "binary_cross_entropy", OpFields(("binary",), "element", label_smoothing=True),
    evaluate=lambda i, sem: binary_cross_entropy(i.x, i.target, i.weight, label_smoothing=i.label_smoothing,
                                                 reduction=i.reduction, sem=sem),
    variants=("empty_mean_zero", "zero_times_inf_nan", "log_clamp_100", "clip_eps_1e-7", "mean_last_axis_first",
              "bce_grad_eps_1e-12", "clip_eps_1e-7+mean_last_axis_first", "log_clamp_100+bce_grad_eps_1e-12"),
    input_kind="probs", catalog=catalog, short="bce",
    doc="docs/semantics.md#binary_cross_entropy-probabilities-p-targets-t-elementwise-weight-w",
)
