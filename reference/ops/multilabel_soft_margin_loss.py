"""multilabel_soft_margin_loss: the sigmoid loss averaged over the classes of each row
(docs/semantics.md#multilabel_soft_margin_loss-n-c-logits-targets-class-weight)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .. import levels as lv
from ..losses import Outputs, binary_targets, broadcast, finish_elements, logit_positions
from ..op import Op, OpFields
from ..semantics import CANONICAL, Semantics


def multilabel_soft_margin_loss(x: np.ndarray, target: np.ndarray, weight=None, *, reduction: str = "mean",
                                sem: Semantics = CANONICAL) -> Outputs:
    """-(1/C) sum_c w_c (t log sigmoid(x) + (1-t) log sigmoid(-x)) per row, reduced over N."""
    t = binary_targets(target, Fraction(0))
    positions = logit_positions(x, t, broadcast(weight, x.shape), broadcast(None, x.shape), sem)
    return finish_elements(positions, x, reduction, sem, fold_last=True)


def catalog() -> list[dict]:
    out = [lv.case(f"cat-mlsm-{name}", "multilabel_soft_margin_loss", ["domain"], input=[["0.5", "-1"]],
                   target=[[lv.DOMAIN[name][1], "1"]]) for name in ("t-above-one", "t-negative")]
    for red in lv.REDUCTIONS:
        for wname in ("ones", "large-ratio"):
            out.append(lv.case(f"cat-mlsm-{wname}-{red}", "multilabel_soft_margin_loss", [f"weight:{wname}"],
                               input=lv.X4, target=[["0", "1", "1"], ["1", "0", "1"], ["0", "0", "1"], ["1", "1", "0"]],
                               weight=lv.WEIGHTS[wname], reduction=red))
    for name, v in [("pos-inf", "inf"), ("neg-inf", "-inf"), ("nan", "nan"), ("max", "max"), ("zero", "0")]:
        out.append(lv.case(f"cat-mlsm-{name}", "multilabel_soft_margin_loss", [f"value:{name}"],
                           input=[[v, "0.5", "-1"], lv.OTHER_ROW], target=[["1", "0", "1"], ["0", "1", "0.5"]],
                           reduction="none"))
    return out + lv.shape_tables("mlsm", lambda shape: dict(op="multilabel_soft_margin_loss", input=lv.filled(shape),
                                                            target=lv.filled(shape, 1, "binary")), ranks=(2,))


OP = Op(
    "multilabel_soft_margin_loss", OpFields(("binary",), "class", ndims=(2,)),
    evaluate=lambda i, sem: multilabel_soft_margin_loss(i.x, i.target, i.weight, reduction=i.reduction, sem=sem),
    variants=("empty_mean_zero", "zero_times_inf_nan"),
    catalog=catalog, short="mlsm",
    doc="docs/semantics.md#multilabel_soft_margin_loss-n-c-logits-targets-class-weight",
)
