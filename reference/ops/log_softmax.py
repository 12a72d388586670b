"""log_softmax along the class axis (docs/semantics.md#log_softmax-per-row-along-the-class-axis)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from .. import levels as lv
from ..losses import Outputs, analyse_row, obj, rows_of, softmax_position, unrows
from ..op import Op, OpFields
from ..semantics import CANONICAL, Semantics


def log_softmax(x: np.ndarray, sem: Semantics = CANONICAL) -> Outputs:
    rows, _ = rows_of(x)
    size = rows.shape[1]
    loss, loss_cond, grad, grad_cond = [], [], [], []
    for r in rows:
        row = analyse_row(list(r), sem)
        p = softmax_position(row, [Fraction(-1)] * size, Fraction(0), sem)
        loss += row.lp
        loss_cond += row.cond
        grad += p.grad
        grad_cond += p.grad_cond
    flat_shape = rows.shape
    return Outputs(
        unrows(obj(loss, flat_shape), x), unrows(np.array(loss_cond).reshape(flat_shape), x),
        unrows(obj(grad, flat_shape), x), unrows(np.array(grad_cond).reshape(flat_shape), x),
    )


def catalog() -> list[dict]:
    out = [lv.case(f"cat-ls-{name}", "log_softmax", [f"value:{name}"], input=lv.value_row(v))
           for name, v in lv.LOGIT_VALUES.items()]
    # structural rows: ties, a dominant class, a huge spread
    out += [lv.case(f"cat-ls-{name}", "log_softmax", [f"row:{name}"], input=[row, lv.OTHER_ROW])
            for name, row in lv.STRUCTURAL_ROWS.items()]
    return out + lv.shape_tables("ls", lambda shape: dict(op="log_softmax", input=lv.filled(shape)),
                                 reductions=("none",))


OP = Op(
    "log_softmax", OpFields(reduction=False),
    evaluate=lambda i, sem: log_softmax(i.x, sem),
    variants=("max_shift_inf_nan",),
    loss_per_class=True, catalog=catalog, short="ls",
    doc="docs/semantics.md#log_softmax-per-row-along-the-class-axis",
)
