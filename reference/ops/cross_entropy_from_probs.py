"""Categorical cross-entropy on probabilities: -w[y] log p_y, or -sum_c w_c t_c log p_c
(docs/semantics.md#cross_entropy_from_probs-categorical-cross-entropy-on-probabilities-p)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .. import levels as lv
from ..losses import Outputs, check_unit_interval, onehot_coefs, prob_row_position, row_loss
from ..op import Op, OpFields
from ..semantics import CANONICAL, Semantics


def cross_entropy_from_probs(p: np.ndarray, target: np.ndarray, weight: list[Fraction] | None = None, *,
                             target_kind: str, ignore_index: int = -100, reduction: str = "mean",
                             sem: Semantics = CANONICAL) -> Outputs:
    check_unit_interval("probability", p)
    return row_loss(
        p, target, weight, target_kind=target_kind, ignore_index=ignore_index, reduction=reduction, sem=sem,
        index_coefs=onehot_coefs, prob_coefs=lambda t, w, size: [w[c] * t[c] for c in range(size)],
        position=lambda row, coefs, denominator, kind, gathered: prob_row_position(row, coefs, denominator, sem,
                                                                                   gathered))


def catalog() -> list[dict]:
    out = lv.target_class_tables("cross_entropy_from_probs", "cefp", lv.P4)
    for name, v in lv.PROB_VALUES.items():
        row = [v, "0.25", "0.5"]
        out.append(lv.case(f"cat-cefp-{name}-target-on", "cross_entropy_from_probs", [f"p:{name}"],
                           input=[row, lv.P4[1]], target=[0, 1], reduction="none"))
        out.append(lv.case(f"cat-cefp-{name}-target-off", "cross_entropy_from_probs", [f"p:{name}"],
                           input=[row, lv.P4[1]], target=[1, 1], reduction="none"))
        out.append(lv.case(f"cat-cefp-{name}-soft", "cross_entropy_from_probs", [f"p:{name}"],
                           input=[row, lv.P4[1]], target=[["0", "0.5", "0.5"], lv.P4[0]], reduction="none"))
    for red in lv.REDUCTIONS:  # row mass far from 1: renormalizing divides by 1/2 or by 2
        out.append(lv.case(f"cat-cefp-mass-{red}", "cross_entropy_from_probs", ["p:unnormalised"],
                           input=[["0.125", "0.125", "0.25"], ["0.5", "0.75", "0.75"]], target=[2, 1],
                           reduction=red))
        out.append(lv.case(f"cat-cefp-mass-soft-{red}", "cross_entropy_from_probs", ["p:unnormalised"],
                           input=[["0.125", "0.125", "0.25"], ["0.5", "0.75", "0.75"]],
                           target=[["0", "0.5", "0.5"], ["0.25", "0.25", "0.5"]], reduction=red))
    for name, p in (("p-above-one", "1.5"), ("p-negative", "-0.25")):
        out.append(lv.case(f"cat-cefp-{name}", "cross_entropy_from_probs", ["domain"],
                           input=[[p, "0.5", "0.25"]], target=[0]))
    return out


OP = Op(
    "cross_entropy_from_probs", OpFields(("index", "probs"), "class", ignore_index=True),
    evaluate=lambda i, sem: cross_entropy_from_probs(i.x, i.target, i.weight, target_kind=i.target_kind,
                                                     ignore_index=i.ignore_index, reduction=i.reduction, sem=sem),
    variants=("mean_by_count", "empty_mean_zero", "zero_times_inf_nan", "log_clamp_100", "clip_eps_1e-7",
              "renormalize_probs", "renormalize_probs+clip_eps_1e-7", "clip_eps_1e-7+renormalize_probs",
              "clip_eps_1e-7+renormalize_probs+mean_by_count", "renormalize_probs+clip_eps_1e-7+mean_by_count"),
    input_kind="probs", catalog=catalog, short="cefp",
    doc="docs/semantics.md#cross_entropy_from_probs-categorical-cross-entropy-on-probabilities-p",
)
