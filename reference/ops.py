"""The canonical semantics of docs/semantics.md as exact formulas over extended reals.

Each op takes exact inputs (numpy object arrays of Fraction or special strings, class
axis at dim 1, or dim 0 when unbatched) and returns exact outputs plus a condition scale
per output element (a float64 used by the tolerance policy, never as a golden value).
The gradient is that of sum(output) with respect to the input, in closed form from the
same softmax: d/dx_j sum_c a_c * (-lp_c) = A * s_j - a_j with A = sum_c a_c.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from . import extended as ex
from .formats import NAN, NEG_INF, POS_INF

FLOAT_MAX = 1.7976931348623157e308


class DomainError(ValueError):
    """The inputs are outside the op's domain: the expected outcome is an exception."""


@dataclass(frozen=True)
class Semantics:
    """The canonical contract, or one named variant of it (docs/semantics.md#variants)."""

    name: str = "canonical"
    mean_by_count: bool = False  # mean divides by the number of non-ignored positions
    empty_mean_zero: bool = False  # an empty mean gives 0, not 0/0 = NaN
    zero_times_inf_nan: bool = False  # IEEE 0 * inf = NaN instead of the 0 * inf = 0 rule
    unit_target_mass_grad: bool = False  # probability-target gradient s - t, as if sum(t) == 1


CANONICAL = Semantics()
VARIANTS = {
    v.name: v
    for v in (
        Semantics("mean_by_count", mean_by_count=True),
        Semantics("empty_mean_zero", empty_mean_zero=True),
        Semantics("zero_times_inf_nan", zero_times_inf_nan=True),
        Semantics("unit_target_mass_grad", unit_target_mass_grad=True),
    )
}


@dataclass
class Outputs:
    loss: np.ndarray  # object array of extended values
    loss_cond: np.ndarray  # float64, same shape
    grad: np.ndarray
    grad_cond: np.ndarray


def _mag(v) -> float:
    f = abs(ex.to_float(v) if not isinstance(v, Fraction) else float(v))
    return min(f, FLOAT_MAX) if not math.isnan(f) else 0.0


def _spread(n: int) -> int:
    """Rounding-error growth of a tree reduction over n terms, in units of u."""
    return math.ceil(math.log2(n)) if n > 1 else 0


@dataclass
class Row:
    """log_softmax of one row, with the limits of docs/semantics.md."""

    lp: list
    softmax: list
    cond: list[float]  # condition scale of each lp_c: |x_c| + |lse| + ceil(log2 C)


def analyse_row(xs: list) -> Row:
    size = len(xs)
    nan_row = Row([NAN] * size, [NAN] * size, [0.0] * size)
    if any(x == NAN for x in xs if isinstance(x, str)):
        return nan_row
    if size == 1:  # lp == 0 for every x, so also in both infinite limits
        return Row([ex.ZERO], [ex.exact(1)], [0.0])
    pos_inf = [i for i, x in enumerate(xs) if isinstance(x, str) and x == POS_INF]
    if pos_inf:
        if len(pos_inf) == 1:  # one winner: the limit is a one-hot distribution
            winner = pos_inf[0]
            lp = [ex.ZERO if i == winner else NEG_INF for i in range(size)]
            sm = [ex.exact(1) if i == winner else ex.ZERO for i in range(size)]
        else:  # several +inf: their shares are indeterminate
            lp = [NAN if i in pos_inf else NEG_INF for i in range(size)]
            sm = [NAN if i in pos_inf else ex.ZERO for i in range(size)]
        return Row(lp, sm, [0.0] * size)
    finite = [i for i, x in enumerate(xs) if not isinstance(x, str)]
    if not finite:  # all -inf: 0/0
        return nan_row
    if len(finite) == 1:  # exp(-inf) = 0 leaves one term: lse == x_f exactly
        lse_mag = _mag(xs[finite[0]])
        lp = [ex.ZERO if i == finite[0] else NEG_INF for i in range(size)]
        sm = [ex.exact(1) if i == finite[0] else ex.ZERO for i in range(size)]
        return Row(lp, sm, [2 * lse_mag] * size)
    top = max(xs[i] for i in finite)
    shifted = {i: ex.exact(xs[i] - top) for i in finite}
    exps = {i: s.exp() for i, s in shifted.items()}
    total = sum(exps.values(), ex.ZERO)
    log_total = total.log()
    lse_mag = _mag(ex.exact(top) + log_total)
    lp = [shifted[i] - log_total if i in shifted else NEG_INF for i in range(size)]
    sm = [exps[i] / total if i in exps else ex.ZERO for i in range(size)]
    cond = [min(_mag(x) + lse_mag + _spread(size), FLOAT_MAX) for x in xs]
    return Row(lp, sm, cond)


def _rows(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """Class axis moved last and flattened to (positions, C); returns the position shape."""
    class_axis = 0 if x.ndim == 1 else 1
    last = np.moveaxis(x, class_axis, -1)
    return last.reshape(-1, x.shape[class_axis]), last.shape[:-1]


def _unrows(flat: np.ndarray, x: np.ndarray) -> np.ndarray:
    class_axis = 0 if x.ndim == 1 else 1
    last_shape = np.moveaxis(np.empty(x.shape, dtype=np.int8), class_axis, -1).shape
    return np.moveaxis(flat.reshape(last_shape), -1, class_axis)


def _obj(values, shape) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(shape)


def _position_grad(row: Row, coefs: list[Fraction], sem: Semantics,
                   unit_mass: bool = False) -> tuple[list, list[float]]:
    """d/dx_j sum_c coefs[c] * (-lp_c) = A * s_j - a_j, and its condition scale.
    unit_mass takes A = 1, the gradient of an implementation that assumes sum(t) == 1."""
    big_a = Fraction(1) if unit_mass else sum(coefs, Fraction(0))
    grad, cond = [], []
    for s_j, a_j, mag_j in zip(row.softmax, coefs, row.cond):
        grad.append(ex.add(ex.scale(big_a, s_j, sem.zero_times_inf_nan), ex.exact(-a_j)))
        cond.append(min(abs(float(big_a)) * _mag(s_j) * (2 + mag_j) + abs(float(a_j)), FLOAT_MAX))
    return grad, cond


def log_softmax(x: np.ndarray, sem: Semantics = CANONICAL) -> Outputs:
    rows, _ = _rows(x)
    size = rows.shape[1]
    loss, loss_cond, grad, grad_cond = [], [], [], []
    for r in rows:
        row = analyse_row(list(r))
        loss += row.lp
        loss_cond += row.cond
        g, gc = _position_grad(row, [Fraction(-1)] * size, sem)
        grad += g
        grad_cond += gc
    flat_shape = rows.shape
    return Outputs(
        _unrows(_obj(loss, flat_shape), x), _unrows(np.array(loss_cond).reshape(flat_shape), x),
        _unrows(_obj(grad, flat_shape), x), _unrows(np.array(grad_cond).reshape(flat_shape), x),
    )


def _check_smoothing(label_smoothing: Fraction) -> None:
    if not 0 <= label_smoothing <= 1:
        raise DomainError(f"label_smoothing {float(label_smoothing)} outside [0, 1]")


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
    """torch-style cross_entropy over logits, with class-index or probability targets."""
    _check_smoothing(label_smoothing)
    rows, pos_shape = _rows(x)
    n_pos, size = rows.shape
    w = [Fraction(1)] * size if weight is None else list(weight)
    smooth = label_smoothing / size if size else Fraction(0)
    if target_kind == "index":
        flat_target = np.asarray(target).reshape(-1)
        for pos, t in enumerate(flat_target):
            if t != ignore_index and not 0 <= t < size:
                raise DomainError(f"target {int(t)} at flat position {pos} outside [0, {size})")
    else:
        flat_target, _ = _rows(target)

    losses, conds, grads, grad_conds = [], [], [], []
    denominator, ignored = Fraction(0), []
    for pos in range(n_pos):
        if target_kind == "index":
            t = int(flat_target[pos])
            if t == ignore_index:
                ignored.append(True)
                losses.append(ex.ZERO)
                conds.append(0.0)
                grads += [ex.ZERO] * size
                grad_conds += [0.0] * size
                continue
            coefs = [(1 - label_smoothing) * w[t] * (c == t) + smooth * w[c] for c in range(size)]
            denominator += 1 if sem.mean_by_count else w[t]
        else:
            coefs = [w[c] * ((1 - label_smoothing) * flat_target[pos][c] + smooth) for c in range(size)]
            denominator += 1
        ignored.append(False)
        row = analyse_row(list(rows[pos]))
        terms = [ex.scale(a, ex.neg(lp), sem.zero_times_inf_nan) for a, lp in zip(coefs, row.lp)]
        losses.append(ex.total(terms))
        conds.append(min(sum(abs(float(a)) * m for a, m in zip(coefs, row.cond) if a), FLOAT_MAX))
        g, gc = _position_grad(row, coefs, sem, sem.unit_target_mass_grad and target_kind == "probs")
        grads += g
        grad_conds += gc

    grad_flat_shape = (n_pos, size)
    if reduction == "none":
        return Outputs(
            _obj(losses, pos_shape), np.array(conds, dtype=float).reshape(pos_shape),
            _unrows(_obj(grads, grad_flat_shape), x),
            _unrows(np.array(grad_conds, dtype=float).reshape(grad_flat_shape), x),
        )
    summed = ex.total(losses)
    sum_cond = min((1 + _spread(n_pos)) * sum(conds), FLOAT_MAX)
    if reduction == "sum":
        grad_scale = Fraction(1)
        value, cond = summed, sum_cond
    elif reduction == "mean":
        if denominator == 0 and sem.empty_mean_zero:
            value, cond, grad_scale = ex.ZERO, 0.0, Fraction(0)
        else:
            value = ex.divide(summed, denominator)
            cond = sum_cond / abs(float(denominator)) if denominator else 0.0
            grad_scale = 1 / denominator if denominator else None
    else:
        raise ValueError(f"unknown reduction {reduction!r}")

    scaled, scaled_cond = [], []
    for pos in range(n_pos):
        for j in range(size):
            k = pos * size + j
            if ignored[pos]:
                scaled.append(ex.ZERO)
                scaled_cond.append(0.0)
            elif grad_scale is None:  # empty mean: the loss is NaN around this point
                scaled.append(NAN)
                scaled_cond.append(0.0)
            else:
                scaled.append(ex.scale(grad_scale, grads[k]))
                scaled_cond.append(min(grad_conds[k] * float(grad_scale), FLOAT_MAX))
    return Outputs(
        _obj([value], ()), np.array(min(cond, FLOAT_MAX)),
        _unrows(_obj(scaled, grad_flat_shape), x),
        _unrows(np.array(scaled_cond, dtype=float).reshape(grad_flat_shape), x),
    )
