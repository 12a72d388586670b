"""torch-style cross_entropy over logits, with class-index or probability targets
(docs/semantics.md#cross_entropy-class-index-targets)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .. import levels as lv
from ..losses import Outputs, analyse_row, check_unit_interval, onehot_coefs, row_loss, softmax_position
from ..op import ExactInputs, Op, OpFields
from ..semantics import CANONICAL, Semantics


def cross_entropy(
    x: np.ndarray,
    target: np.ndarray,
    weight: list[Fraction] | None = None,
    *,
    target_kind: str,
    ignore_index: int = -100,
    label_smoothing: Fraction = Fraction(0),
    reduction: str = "mean",
    sem: Semantics = CANONICAL,
) -> Outputs:
    check_unit_interval("label_smoothing", [label_smoothing], allow_nan=False)
    e = label_smoothing

    def position(row, coefs, denominator, kind, gathered):
        unit_mass = sem.unit_target_mass_grad and kind == "probs"
        return softmax_position(analyse_row(row, sem), coefs, denominator, sem, unit_mass, gathered)

    return row_loss(
        x, target, weight, target_kind=target_kind, ignore_index=ignore_index, reduction=reduction, sem=sem,
        # without smoothing these are onehot_coefs' exact values, which cost a fifth as much
        index_coefs=lambda t, w, size: [(1 - e) * w[t] * (c == t) + e / size * w[c] for c in range(size)] if e
        else onehot_coefs(t, w, size),
        prob_coefs=lambda t, w, size: [w[c] * ((1 - e) * t[c] + e / size) for c in range(size)],
        position=position, gathers=not e)  # smoothing multiplies every class's log-probability


def _evaluate(i: ExactInputs, sem: Semantics) -> Outputs:
    return cross_entropy(i.x, i.target, i.weight, target_kind=i.target_kind, ignore_index=i.ignore_index,
                         label_smoothing=i.label_smoothing, reduction=i.reduction, sem=sem)


def _admits(variant: str, i: ExactInputs) -> bool:
    # only probability targets have a target mass to assume
    return variant != "unit_target_mass_grad" or i.target_kind == "probs"


def catalog() -> list[dict]:
    out = []
    for name, v in lv.LOGIT_VALUES.items():
        x = lv.value_row(v)
        for on, t in (("on", 0), ("off", 1)):
            out.append(lv.case(f"cat-ce-{name}-target-{on}", "cross_entropy", [f"value:{name}"],
                               input=x, target=[t, 2], reduction="none"))
        out.append(lv.case(f"cat-cep-{name}-zero-mass", "cross_entropy", [f"value:{name}"],
                           input=x, target=[["0", "0.5", "0.5"], ["0.25", "0.25", "0.5"]], reduction="none"))
    for name, row in lv.STRUCTURAL_ROWS.items():
        out.append(lv.case(f"cat-ce-{name}", "cross_entropy", [f"row:{name}"],
                           input=[row, lv.OTHER_ROW], target=[1, 0], reduction="none"))
    out += lv.target_class_tables("cross_entropy", "ce", lv.X4)
    for (e, ename), (wname, w), red in lv.product((("0.1", "0.1"), ("1", "1")),
                                                  (("ones", None), ("large-ratio", lv.WEIGHTS["large-ratio"])),
                                                  ("mean", "none")):
        fields = {"weight": w} if w else {}
        tags = [f"smoothing:{ename}", f"weight:{wname}"]
        out.append(lv.case(f"cat-ce-smooth-{ename}-{wname}-{red}", "cross_entropy", tags, input=lv.X4,
                           target=[2, 0, 1, 2], label_smoothing=e, reduction=red, **fields))
        out.append(lv.case(f"cat-cep-smooth-{ename}-{wname}-{red}", "cross_entropy", tags, input=lv.X4,
                           target=lv.P4, label_smoothing=e, reduction=red, **fields))
    for red in lv.REDUCTIONS:  # probability-target rows of mass 2 and 1/2
        out.append(lv.case(f"cat-cep-mass-{red}", "cross_entropy", ["target:unnormalised"], input=lv.X4[:2],
                           target=[["1", "0.5", "0.5"], ["0.25", "0", "0.25"]], reduction=red))
    out += lv.shape_tables("ce", lambda shape: dict(op="cross_entropy", input=lv.filled(shape),
                                                    target=lv.index_targets(shape, lv.classes_of(shape))))
    out += lv.shape_tables("cep", lambda shape: dict(op="cross_entropy", input=lv.filled(shape),
                                                     target=lv.prob_rows(shape)), ranks=(2,))
    return out


OP = Op(
    "cross_entropy", OpFields(("index", "probs"), "class", ignore_index=True, label_smoothing=True),
    evaluate=_evaluate, admits=_admits,
    variants=("mean_by_count", "empty_mean_zero", "zero_times_inf_nan", "max_shift_inf_nan",
              "unit_target_mass_grad"),
    catalog=catalog, short="ce", doc="docs/semantics.md#cross_entropy-class-index-targets",
)
