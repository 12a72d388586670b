"""nll_loss on log-probabilities (docs/semantics.md#nll_loss)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .. import extended as ex, levels as lv
from ..losses import Outputs, Position, cap, mag, multiplied, onehot_coefs, row_loss, value
from ..op import Op, OpFields
from ..semantics import CANONICAL, Semantics


def nll_loss(x: np.ndarray, target: np.ndarray, weight: list[Fraction] | None = None, *,
             ignore_index: int = -100, reduction: str = "mean", sem: Semantics = CANONICAL) -> Outputs:
    """loss_i = -w[y_i] * x[i, y_i]; its gradient is -w[y] at y."""
    def position(row, coefs, denominator, kind, gathered):
        ieee = multiplied(sem, len(row), gathered)
        # the target's entry alone: implementations gather it, so a NaN elsewhere in the row never
        # reaches the loss (docs/semantics.md#nll_loss)
        terms = [ex.scale(a, ex.neg(value(v)), m) for c, (a, v, m) in enumerate(zip(coefs, row, ieee))
                 if gathered is None or c == gathered or a or m]
        cond = cap(sum(abs(float(a)) * mag(v) for a, v in zip(coefs, row) if a))
        return Position(ex.total(terms), cond, [ex.rational(-a) for a in coefs], [abs(float(a)) for a in coefs],
                        denominator)

    return row_loss(x, target, weight, target_kind="index", ignore_index=ignore_index, reduction=reduction,
                    sem=sem, index_coefs=onehot_coefs, prob_coefs=None, position=position)


def catalog() -> list[dict]:
    out = [lv.case(f"cat-nll-{name}", "nll_loss", [f"value:{name}"], input=lv.value_row(v), target=[0, 1],
                   reduction="none") for name, v in lv.LOGIT_VALUES.items()]
    out += lv.target_class_tables("nll_loss", "nll", lv.LOGP4)
    return out + lv.shape_tables("nll", lambda shape: dict(op="nll_loss", input=lv.filled(shape, 3),
                                                           target=lv.index_targets(shape, lv.classes_of(shape))))


OP = Op(
    "nll_loss", OpFields(("index",), "class", ignore_index=True),
    evaluate=lambda i, sem: nll_loss(i.x, i.target, i.weight, ignore_index=i.ignore_index,
                                     reduction=i.reduction, sem=sem),
    variants=("mean_by_count", "empty_mean_zero", "zero_times_inf_nan"),
    input_kind="log_probs", catalog=catalog, short="nll", doc="docs/semantics.md#nll_loss",
)
