"""The exact machinery every loss shares, over extended reals.

Ops (reference/ops/<name>.py) take exact inputs (numpy object arrays of Fraction or special
strings, in the canonical layout) and return exact outputs plus a condition scale per
output element (a float64 used by the tolerance policy, never as a golden value). The
gradient is that of sum(output) with respect to the input (logits, log-probabilities or
probabilities).

Every loss is computed per *position* (a row along the class axis, or one element for the
binary losses), then reduced by one shared step (`reduce_positions`) that owns
ignore_index, the mean's denominator, the empty mean and the gradient's scaling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from . import extended as ex
from .formats import NAN, NEG_INF, POS_INF
from .semantics import Semantics

FLOAT_MAX = 1.7976931348623157e308
LOG_CLAMP = Fraction(-100)


class DomainError(ValueError):
    """The inputs are outside the op's domain: the expected outcome is an exception."""


@dataclass
class Outputs:
    loss: np.ndarray  # object array of extended values
    loss_cond: np.ndarray  # float64, same shape
    grad: np.ndarray
    grad_cond: np.ndarray


def mag(v) -> float:
    """|v| as a float64 capped at the largest double (NaN counts as 0), for condition scales."""
    f = abs(float(v) if isinstance(v, Fraction) else ex.to_float(v))
    return min(f, FLOAT_MAX) if not math.isnan(f) else 0.0


def cap(x: float) -> float:
    return min(x, FLOAT_MAX)


def spread(n: int) -> int:
    """Rounding-error growth of a tree reduction over n terms, in units of u."""
    return math.ceil(math.log2(n)) if n > 1 else 0


def obj(values, shape) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(shape)


def value(v):
    """An exact input (Fraction or special) as an extended value."""
    return v if isinstance(v, str) else ex.exact(v)

# --- layouts ----------------------------------------------------------------------

def rows_of(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """Class axis moved last and flattened to (positions, C); returns the position shape."""
    class_axis = 0 if x.ndim == 1 else 1
    last = np.moveaxis(x, class_axis, -1)
    return last.reshape(-1, x.shape[class_axis]), last.shape[:-1]


def unrows(flat: np.ndarray, x: np.ndarray) -> np.ndarray:
    class_axis = 0 if x.ndim == 1 else 1
    last_shape = np.moveaxis(np.empty(x.shape, dtype=np.int8), class_axis, -1).shape
    return np.moveaxis(flat.reshape(last_shape), -1, class_axis)


# --- positions and the shared reduction ------------------------------------------------

@dataclass
class Position:
    loss: object
    cond: float
    grad: list  # d loss / d (this position's inputs)
    grad_cond: list[float]
    denominator: Fraction  # what it adds to the mean's denominator
    ignored: bool = False


def ignored_position(width: int) -> Position:
    return Position(ex.ZERO, 0.0, [ex.ZERO] * width, [0.0] * width, Fraction(0), ignored=True)


def fold_last_axis(positions: list[Position], length: int) -> list[Position]:
    """Average consecutive groups of `length` elementwise positions (Keras' mean over the
    last axis before the reduction)."""
    folded = []
    for start in range(0, len(positions), length):
        group = positions[start:start + length]
        inv = Fraction(1, length)
        folded.append(Position(
            ex.divide(ex.total(p.loss for p in group), Fraction(length)),
            sum(p.cond for p in group) / length,
            [ex.scale(inv, g) for p in group for g in p.grad],
            [c / length for p in group for c in p.grad_cond],
            Fraction(1)))
    return folded


def reduce_positions(positions: list[Position], loss_shape: tuple, reduction: str, sem: Semantics):
    """(loss, loss_cond, flat grads, flat grad conds) for none | sum | mean."""
    flat_grads = [g for p in positions for g in p.grad]
    flat_conds = [c for p in positions for c in p.grad_cond]
    if reduction == "none":
        return (obj([p.loss for p in positions], loss_shape),
                np.array([p.cond for p in positions], dtype=float).reshape(loss_shape), flat_grads, flat_conds)
    summed = ex.total(p.loss for p in positions)
    # each position's own error, plus a tree sum's: ceil(log2 n) u times the summands' magnitudes
    sum_cond = cap(sum(p.cond for p in positions) + spread(len(positions)) * sum(mag(p.loss) for p in positions))
    if reduction == "sum":
        return obj([summed], ()), np.array(sum_cond), flat_grads, flat_conds
    if reduction != "mean":
        raise ValueError(f"unknown reduction {reduction!r}")
    denominator = sum((p.denominator for p in positions), Fraction(0))
    if denominator == 0 and sem.empty_mean_zero:
        zero = [ex.ZERO] * len(flat_grads)
        return obj([ex.ZERO], ()), np.array(0.0), zero, [0.0] * len(flat_grads)
    value = ex.divide(summed, denominator)
    cond = sum_cond / abs(float(denominator)) if denominator else 0.0
    grads, conds = [], []
    for p in positions:
        for g, c in zip(p.grad, p.grad_cond):
            if p.ignored:
                grads.append(ex.ZERO)
                conds.append(0.0)
            elif denominator == 0:  # the mean is NaN around this point: no derivative
                grads.append(NAN)
                conds.append(0.0)
            else:
                grads.append(ex.scale(1 / denominator, g))
                conds.append(cap(c / abs(float(denominator))))
    return obj([value], ()), np.array(cap(cond)), grads, conds


def finish_rows(positions, pos_shape, x, reduction, sem) -> Outputs:
    """Reduce row positions; gradients back in x's layout (class axis at dim 1)."""
    loss, loss_cond, grads, conds = reduce_positions(positions, pos_shape, reduction, sem)
    flat_shape = (len(positions), x.shape[0 if x.ndim == 1 else 1])
    return Outputs(loss, np.asarray(loss_cond, dtype=float), unrows(obj(grads, flat_shape), x),
                   unrows(np.array(conds, dtype=float).reshape(flat_shape), x))


def finish_elements(positions, x, reduction, sem, fold_last: bool) -> Outputs:
    """Reduce elementwise positions, optionally averaging the last axis first."""
    shape = x.shape
    if fold_last:
        positions = fold_last_axis(positions, shape[-1])
        shape = shape[:-1]
    loss, loss_cond, grads, conds = reduce_positions(positions, shape, reduction, sem)
    return Outputs(loss, np.asarray(loss_cond, dtype=float), obj(grads, x.shape),
                   np.array(conds, dtype=float).reshape(x.shape))


# --- log_softmax and the softmax cross-entropy ----------------------------------------

@dataclass
class Row:
    """log_softmax of one row, with the limits of docs/semantics.md."""

    lp: list
    softmax: list
    cond: list[float]  # condition scale of each lp_c: |x_c| + |lse| + ceil(log2 C)


def analyse_row(xs: list, sem: Semantics) -> Row:
    size = len(xs)
    nan_row = Row([NAN] * size, [NAN] * size, [0.0] * size)
    specials = [x for x in xs if isinstance(x, str)]
    if NAN in specials:
        return nan_row
    if sem.max_shift_inf_nan and (POS_INF in specials or (size == 1 and specials)):
        return nan_row  # x - max(x) with an infinite maximum: inf - inf in every entry
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
        lse_mag = mag(xs[finite[0]])
        lp = [ex.ZERO if i == finite[0] else NEG_INF for i in range(size)]
        sm = [ex.exact(1) if i == finite[0] else ex.ZERO for i in range(size)]
        return Row(lp, sm, [2 * lse_mag] * size)
    top = max(xs[i] for i in finite)
    lp_finite, sm_finite, log_total = log_softmax_parts([xs[i] - top for i in finite])
    lse_mag = mag(ex.exact(top) + log_total)
    lp, sm = [NEG_INF] * size, [ex.ZERO] * size
    for i, lp_i, sm_i in zip(finite, lp_finite, sm_finite):
        lp[i], sm[i] = lp_i, sm_i
    cond = [cap(mag(x) + lse_mag + spread(size)) for x in xs]
    return Row(lp, sm, cond)


def log_softmax_parts(shifted: list[Fraction], columns=None) -> tuple[list, list, object]:
    """log_softmax and softmax of a finite row already shifted by its maximum (every d <= 0,
    k of them 0) at `columns` (default: every class), and log(sum exp(d)), each exact part
    kept apart from what the other classes add (ex.Split): with R = sum of exp(d) over the
    classes below the maximum, lp = d - log(k + R) and softmax = 1/k - R / (k (k + R)) at the
    maximum, exp(d) / (k + R) elsewhere. Where R is e**-10000, a loss can be exactly a
    rounding midpoint plus R's share."""
    k = sum(1 for d in shifted if d == 0)
    exps = [ex.exact(d).exp() if d else None for d in shifted]
    rest = sum((e for e in exps if e is not None), ex.ZERO)
    total = k + rest
    log_total = rest.log1p() if k == 1 else total.log()
    at_top = ex.Split(Fraction(1, k), -rest / (k * total))
    columns = range(len(shifted)) if columns is None else columns
    lp = [ex.Split(shifted[c], -log_total) for c in columns]
    sm = [at_top if exps[c] is None else ex.Split(0, exps[c] / total) for c in columns]
    return lp, sm, log_total


def multiplied(sem: Semantics, size: int, gathered: int | None) -> list[bool]:
    """Where the IEEE product 0 * inf = NaN can arise: every class when an implementation
    multiplies whole rows by their coefficients, only the target class when it gathers it."""
    return [sem.zero_times_inf_nan and (gathered is None or c == gathered) for c in range(size)]


def softmax_position(row: Row, coefs: list[Fraction], denominator: Fraction, sem: Semantics,
                     unit_mass: bool = False, gathered: int | None = None) -> Position:
    """loss = sum_c a_c * (-lp_c); d/dx_j = A * s_j - a_j with A = sum_c a_c (or 1 when
    unit_mass: the gradient of an implementation that assumes sum(t) == 1)."""
    ieee = multiplied(sem, len(coefs), gathered)
    terms = [ex.scale(a, ex.neg(lp), m) for a, lp, m in zip(coefs, row.lp, ieee)]
    big_a = Fraction(1) if unit_mass else sum(coefs, Fraction(0))
    big_a_mag = abs(float(big_a))
    grad, grad_cond = [], []
    for s_j, a_j, mag_j in zip(row.softmax, coefs, row.cond):
        # a zero coefficient (every class but the target's, one-hot) needs no exact conversion
        grad.append(ex.add(ex.scale(big_a, s_j, sem.zero_times_inf_nan), ex.rational(-a_j) if a_j else ex.ZERO))
        grad_cond.append(cap(big_a_mag * mag(s_j) * (2 + mag_j) + (abs(float(a_j)) if a_j else 0.0)))
    cond = cap(sum(abs(float(a)) * m for a, m in zip(coefs, row.cond) if a))
    return Position(ex.total(terms), cond, grad, grad_cond, denominator)


def check_unit_interval(name: str, values, allow_nan: bool = True) -> None:
    for pos, v in enumerate(np.asarray(values, dtype=object).reshape(-1)):
        if isinstance(v, str):
            if v == NAN and allow_nan:
                continue
            raise DomainError(f"{name} {v} at flat position {pos} outside [0, 1]")
        if not 0 <= v <= 1:
            raise DomainError(f"{name} {float(v)} at flat position {pos} outside [0, 1]")


def check_targets(target: np.ndarray, size: int, ignore_index: int) -> np.ndarray:
    flat = np.asarray(target).reshape(-1)
    for pos, t in enumerate(flat):
        if t != ignore_index and not 0 <= t < size:
            raise DomainError(f"target {int(t)} at flat position {pos} outside [0, {size})")
    return flat


def row_loss(x, target, weight, *, target_kind, ignore_index, reduction, sem, index_coefs, prob_coefs,
             position, gathers: bool = True) -> Outputs:
    """The loop every class-axis loss shares: ignored positions, the mean's denominator (w[y],
    or 1 per position), and the coefficients of each class, handed to `position(row, coefs,
    denominator, target_kind, gathered)` for the op's own per-row loss and gradient.
    `gathered` is the target class where an implementation picks the target's term out of
    the row (class-index targets, `gathers`) rather than multiplying the whole row."""
    rows, pos_shape = rows_of(x)
    n_pos, size = rows.shape
    w = [Fraction(1)] * size if weight is None else list(weight)
    positions = []
    if target_kind == "index":
        flat = check_targets(target, size, ignore_index)
        for pos in range(n_pos):
            t = int(flat[pos])
            if t == ignore_index:
                positions.append(ignored_position(size))
                continue
            denominator = Fraction(1) if sem.mean_by_count else w[t]
            positions.append(position(list(rows[pos]), index_coefs(t, w, size), denominator, target_kind,
                                      t if gathers else None))
    else:
        probs, _ = rows_of(target)
        for pos in range(n_pos):
            positions.append(position(list(rows[pos]), prob_coefs(probs[pos], w, size), Fraction(1), target_kind,
                                      None))
    return finish_rows(positions, pos_shape, x, reduction, sem)


def onehot_coefs(t: int, w: list[Fraction], size: int) -> list[Fraction]:
    return [w[t] if c == t else Fraction(0) for c in range(size)]


# --- losses on probabilities ----------------------------------------------------------

def log_probability(q: Fraction, sem: Semantics):
    """log of an exact probability: log 0 = -inf, clamped at -100 under the variant.
    Returns (value, clamped)."""
    value = NEG_INF if q == 0 else ex.exact(q).log()
    if not sem.log_clamp:
        return value, False
    if isinstance(value, str) or value < ex.exact(LOG_CLAMP):
        return ex.exact(LOG_CLAMP), True
    if not value > ex.exact(LOG_CLAMP):
        raise ex.PrecisionTooLow  # the enclosure straddles the clamp
    return value, False


def clip_probability(q: Fraction, sem: Semantics) -> tuple[Fraction, bool]:
    """q clipped to the variant's bounds, and whether the gradient passes (TF's
    clip_by_value passes it where lo <= q <= hi)."""
    lo, hi = sem.clip
    return min(max(q, lo), hi), lo <= q <= hi


def prob_row_position(p: list, coefs: list[Fraction], denominator: Fraction, sem: Semantics,
                      gathered: int | None = None) -> Position:
    """loss = sum_c a_c * (-log q_c) where q is p after the variant's transforms; the
    gradient with respect to p by the chain rule through those transforms."""
    size = len(p)
    nan_at = [c for c, v in enumerate(p) if isinstance(v, str)]  # NaN probabilities (inf is a domain error)
    if nan_at:
        ieee = multiplied(sem, size, gathered)
        if gathered is None or "renormalize" in sem.prob_transforms or any(coefs[c] or ieee[c] for c in nan_at):
            return Position(NAN, 0.0, [NAN] * size, [0.0] * size, denominator)
        # a class-index target reads its own entry alone (gathered): a NaN in a class whose
        # coefficient is 0 reaches neither the loss nor the gradient (0 there), as if it were 1
        p = [Fraction(1) if isinstance(v, str) else v for v in p]
    q = list(p)
    passes = []  # per transform: ("clip", mask) or ("renormalize", total)
    for step in sem.prob_transforms:
        if step == "clip":
            clipped = [clip_probability(v, sem) for v in q]
            q = [c for c, _ in clipped]
            passes.append(("clip", [m for _, m in clipped]))
        else:
            total = sum(q, Fraction(0))
            if total == 0:
                return Position(NAN, 0.0, [NAN] * size, [0.0] * size, denominator)
            q = [v / total for v in q]
            passes.append(("renormalize", total))
    logs = [log_probability(v, sem) for v in q]
    terms = [ex.scale(a, ex.neg(lv), m) for a, (lv, _), m in zip(coefs, logs, multiplied(sem, size, gathered))]
    cond = cap(sum(abs(float(a)) * (mag(lv) + 1 + spread(size)) for a, (lv, _) in zip(coefs, logs) if a))
    # d loss / d q_c = -a_c / q_c (0 where a_c = 0 or the log is clamped)
    grad = []
    for a, v, (_, clamped) in zip(coefs, q, logs):
        if a == 0 or clamped:
            grad.append(ex.ZERO)
        elif v == 0:
            grad.append(NEG_INF if a > 0 else POS_INF)
        else:
            grad.append(ex.rational(-a / v))
    # the size of the terms each gradient is a sum of: a renormalisation's backward is a
    # difference, g_j / S - dot / S, that cancels where the target's class holds most of the
    # row's mass; its rounding errors scale with the terms, not with what is left of them
    terms_mag = [mag(g) for g in grad]
    for (step, info), q_in in zip(reversed(passes), _inputs_of(p, sem, passes)):
        if step == "clip":
            grad = [g if m else ex.ZERO for g, m in zip(grad, info)]
            terms_mag = [t if m else 0.0 for t, m in zip(terms_mag, info)]
        else:  # q = p / S: dL/dp_j = g_j / S - sum_c g_c q_c / S, where g_c q_c = -a_c
            total = info  # if g_c = -a_c / q_c is infinite because q_c = 0
            q_c = [v / total for v in q_in]
            dot = ex.total(ex.rational(-a) if qc == 0 and ex.is_special(g) else ex.scale(qc, g)
                           for a, qc, g in zip(coefs, q_c, grad))
            dot_mag = sum(abs(float(a)) if qc == 0 and ex.is_special(g) else float(qc) * t
                          for a, qc, g, t in zip(coefs, q_c, grad, terms_mag))
            grad = [ex.add(ex.divide(g, total), ex.neg(ex.divide(dot, total))) for g in grad]
            terms_mag = [cap((t + dot_mag) / float(total)) for t in terms_mag]
    grad_cond = [cap(2 * (1 + spread(size)) * max(mag(g), t)) for g, t in zip(grad, terms_mag)]
    return Position(ex.total(terms), cond, grad, grad_cond, denominator)


def _inputs_of(p: list, sem: Semantics, passes: list) -> list[list[Fraction]]:
    """The input of each transform, last transform first (for the backward pass)."""
    inputs, q = [], list(p)
    for step, info in passes:
        inputs.append(q)
        q = [clip_probability(v, sem)[0] for v in q] if step == "clip" else [v / info for v in q]
    return list(reversed(inputs))


def broadcast(values, shape) -> np.ndarray:
    if values is None:
        return np.full(shape, Fraction(1), dtype=object)
    return np.broadcast_to(np.asarray(values, dtype=object), shape)


def binary_targets(target: np.ndarray, label_smoothing: Fraction) -> np.ndarray:
    """Binary label smoothing pulls toward 1/2: t' = (1 - e) t + e / 2."""
    check_unit_interval("target", target, allow_nan=False)
    check_unit_interval("label_smoothing", [label_smoothing], allow_nan=False)
    return np.vectorize(lambda t: (1 - label_smoothing) * t + label_smoothing / 2, otypes=[object])(target)


# --- losses on logits, elementwise ------------------------------------------------------

def softplus(z: Fraction | str):
    """log(1 + exp(z)), exact for finite z, with its limits: max(z, 0) exactly, plus
    log1p(exp(-|z|)) apart (an ex.Split: at |z| = 2**61 that remainder is e**-(2**61))."""
    if isinstance(z, str):
        return {POS_INF: POS_INF, NEG_INF: ex.ZERO, NAN: NAN}[z]
    return ex.Split(max(z, Fraction(0)), ex.exact(-abs(z)).exp().log1p())


def sigmoid(z: Fraction | str):
    """1 / (1 + exp(-z)): 1 - sigmoid(-z) for z >= 0, the 1 kept exact (an ex.Split)."""
    if isinstance(z, str):
        return {POS_INF: ex.exact(1), NEG_INF: ex.ZERO, NAN: NAN}[z]
    e = ex.exact(-abs(z)).exp()
    small = e / (1 + e)  # sigmoid(-|z|)
    return ex.Split(1, -small) if z >= 0 else ex.Split(0, small)


def logit_positions(x: np.ndarray, t: np.ndarray, w: np.ndarray, pos_weight: np.ndarray,
                     sem: Semantics) -> list[Position]:
    """w (p t softplus(-x) + (1-t) softplus(x)) per element; d/dx = -A sigmoid(-x) + B sigmoid(x)."""
    positions = []
    for xv, tv, wv, pw in zip(x.reshape(-1), t.reshape(-1), w.reshape(-1), pos_weight.reshape(-1)):
        a, b = wv * pw * tv, wv * (1 - tv)  # coefficients of softplus(-x) and softplus(x)
        neg_x = xv if isinstance(xv, str) and xv == NAN else (
            {POS_INF: NEG_INF, NEG_INF: POS_INF}[xv] if isinstance(xv, str) else -xv)
        loss = ex.add(ex.scale(a, softplus(neg_x), sem.zero_times_inf_nan),
                      ex.scale(b, softplus(xv), sem.zero_times_inf_nan))
        grad = ex.add(ex.neg(ex.scale(a, sigmoid(neg_x))), ex.scale(b, sigmoid(xv)))
        scale = abs(float(a)) + abs(float(b))
        positions.append(Position(loss, cap(scale * (mag(xv) + 1)), [grad], [cap(2 * scale)], Fraction(1)))
    return positions


