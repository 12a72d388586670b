"""Binary cross-entropy on logits, elementwise, with pos_weight
(docs/semantics.md#binary_cross_entropy_with_logits-logits-x-targets-t-weight-w-pos_weight-p)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .. import levels as lv
from ..losses import Outputs, binary_targets, broadcast, finish_elements, logit_positions
from ..op import Op, OpFields
from ..semantics import CANONICAL, Semantics


def binary_cross_entropy_with_logits(x: np.ndarray, target: np.ndarray, weight=None, pos_weight=None, *,
                                     label_smoothing: Fraction = Fraction(0), reduction: str = "mean",
                                     sem: Semantics = CANONICAL) -> Outputs:
    t = binary_targets(target, label_smoothing)
    positions = logit_positions(x, t, broadcast(weight, x.shape), broadcast(pos_weight, x.shape), sem)
    return finish_elements(positions, x, reduction, sem, sem.mean_last_axis_first)


def catalog() -> list[dict]:
    out = [lv.case(f"cat-bcel-{name}", "binary_cross_entropy_with_logits", [f"value:{name}"],
                   input=[[v, v, v], lv.OTHER_ROW], target=lv.BINARY_TARGETS, reduction="none")
           for name, v in lv.LOGIT_VALUES.items()]
    for (e, ename), red in lv.product((("0.1", "0.1"), ("1", "1")), ("mean", "none")):
        out.append(lv.case(f"cat-bcel-smooth-{ename}-{red}", "binary_cross_entropy_with_logits",
                           [f"smoothing:{ename}"], input=lv.X4, target=[["0", "1", "0.5"]] * 4,
                           label_smoothing=e, reduction=red))
    for name in ("t-above-one", "t-negative"):
        out.append(lv.case(f"cat-bcel-{name}", "binary_cross_entropy_with_logits", ["domain"],
                           input=[["0.5", "-1"]], target=[[lv.DOMAIN[name][1], "1"]]))
    for (pname, pw), red in lv.product((("zero", "0"), ("one", "1"), ("large", "1024")), ("none", "mean")):
        out.append(lv.case(f"cat-bcel-pos-weight-{pname}-{red}", "binary_cross_entropy_with_logits",
                           [f"pos_weight:{pname}"], input=lv.X4, target=[["0", "1", "0.5"]] * 4,
                           pos_weight=[pw, "1", pw], reduction=red))
    for red in lv.REDUCTIONS:
        out.append(lv.case(f"cat-bcel-weighted-{red}", "binary_cross_entropy_with_logits", ["weight:elementwise"],
                           input=lv.X4, target=[["0", "1", "0.5"]] * 4, weight=["1", "4", "0.25"], reduction=red))
        out.append(lv.case(f"cat-bcel-{red}", "binary_cross_entropy_with_logits", [], input=lv.X4,
                           target=[["0", "1", "0.5"], ["1", "0", "1"], ["0", "0", "1"], ["1", "1", "0"]],
                           reduction=red))
    return out + lv.shape_tables("bcel", lambda shape: dict(op="binary_cross_entropy_with_logits",
                                                            input=lv.filled(shape),
                                                            target=lv.filled(shape, 1, "binary")))


OP = Op(
    "binary_cross_entropy_with_logits", OpFields(("binary",), "element", pos_weight=True, label_smoothing=True),
    evaluate=lambda i, sem: binary_cross_entropy_with_logits(i.x, i.target, i.weight, i.pos_weight,
                                                             label_smoothing=i.label_smoothing,
                                                             reduction=i.reduction, sem=sem),
    variants=("empty_mean_zero", "zero_times_inf_nan", "mean_last_axis_first"),
    catalog=catalog, short="bcel",
    doc="docs/semantics.md#binary_cross_entropy_with_logits-logits-x-targets-t-weight-w-pos_weight-p",
)
