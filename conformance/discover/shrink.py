"""Shrinking: the smallest, simplest example that keeps a finding's signature.

Greedy and structure-aware: fewer batch rows, spatial positions and classes first, then the
parameters (weights, smoothing, ignored positions), then each value toward 0, 1, -1, an
integer, a power of two, a shorter significand. A candidate is kept when the predicate (the
finding, replayed on the worker) still holds; the search restarts from it, until no candidate
holds or the budget is spent.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable, Iterator

import numpy as np

from reference.ops import OPS

from .strategies import Example, in_dtype


def _take(a: np.ndarray | None, axis: int, keep: list[int]) -> np.ndarray | None:
    return None if a is None else np.take(a, keep, axis=axis)


def _drop(example: Example, axis: int, index: int) -> Example | None:
    """The example without entry `index` of input axis `axis` (0 batch, 1 class, 2 spatial)."""
    x = example.input
    keep = [i for i in range(x.shape[axis]) if i != index]
    op = OPS[example.op]
    changes: dict = {"input": _take(x, axis, keep)}
    t = example.target
    if t is not None:
        if example.target_kind == "index":
            if axis == 1:  # classes: labels above it move down; a label of it (counted) or a class-valued ignore_index stops it
                counted = t != example.ignore_index
                if (t[counted] == index).any() or 0 <= example.ignore_index < x.shape[1]:
                    return None
                changes["target"] = np.where(counted & (t > index), t - 1, t)
            else:
                changes["target"] = _take(t, 0 if axis == 0 else axis - 1, keep)
        else:
            changes["target"] = _take(t, axis, keep)
    w = example.weight
    if w is not None:
        if op.fields.weight == "class":
            changes["weight"] = _take(w, 0, keep) if axis == 1 else w
        elif w.shape == x.shape:
            changes["weight"] = _take(w, axis, keep)
        elif axis == x.ndim - 1:  # a weight of the last dim's length
            changes["weight"] = _take(w, 0, keep)
    if example.pos_weight is not None and axis == x.ndim - 1:
        changes["pos_weight"] = _take(example.pos_weight, 0, keep)
    return replace(example, **changes)


def complexity(v: float) -> tuple:
    """Simpler values first: finite before special, 0, small integers, short significands."""
    if not math.isfinite(v):
        return (1, 0, 0, 0)
    if v == 0:
        return (0, 0, 0, 0 if math.copysign(1, v) > 0 else 1)
    m, e = math.frexp(abs(v))
    bits = 0
    while m != int(m):
        m *= 2
        bits += 1
    return (0, 0 if float(v).is_integer() else 1, bits + abs(e), 0 if v > 0 else 1)


def simpler_values(v: float, dtype: str, kind: str) -> list[float]:
    if not math.isfinite(v):
        return []
    out = [0.0, 1.0] if kind == "probs" else [0.0, 1.0, -1.0]
    if v != 0:
        out += [float(round(v)), math.copysign(2.0 ** round(math.log2(abs(v))), v)]
        m, e = math.frexp(v)
        out += [math.ldexp(round(m * 2 ** k) / 2 ** k, e) for k in (1, 2, 4, 8)]
    if kind == "probs":
        out = [u for u in out if 0 <= u <= 1]
    elif kind == "log_probs":
        out = [u for u in out if u <= 0]
    elif kind == "weights":
        out = [u for u in out if u >= 0]
    rounded = [float(u) for u in in_dtype(out, dtype)]
    seen, result = set(), []
    for u in sorted(rounded, key=complexity):
        if u not in seen and complexity(u) < complexity(v):
            seen.add(u)
            result.append(u)
    return result


def candidates(example: Example) -> Iterator[Example]:
    x = example.input
    for axis in (0, 2, 1) if x.ndim == 3 else (0, 1) if x.ndim == 2 else ():
        if x.shape[axis] > 1:
            for i in range(x.shape[axis]):
                smaller = _drop(example, axis, i)
                if smaller is not None:
                    yield smaller
    if example.weight is not None:
        yield replace(example, weight=None)
    if example.pos_weight is not None:
        yield replace(example, pos_weight=None)
    if example.label_smoothing:
        yield replace(example, label_smoothing=0.0)
    if example.target_kind == "index" and example.target is not None:
        ignored = np.argwhere(example.target == example.ignore_index)
        for where in map(tuple, ignored):
            t = example.target.copy()
            t[where] = 0 if example.ignore_index != 0 else 1 % x.shape[0 if x.ndim == 1 else 1]
            yield replace(example, target=t)
    kind = OPS[example.op].input_kind
    for name, values, value_kind in (("input", x, kind), ("weight", example.weight, "weights"),
                                     ("pos_weight", example.pos_weight, "weights")):
        if values is None:
            continue
        flat = values.reshape(-1)
        for i in range(flat.size):
            for v in simpler_values(float(flat[i]), example.dtype, "probs" if value_kind == kind == "probs" else value_kind):
                changed = flat.copy()
                changed[i] = v
                yield replace(example, **{name: changed.reshape(values.shape)})
    if example.target_kind == "binary" and example.target is not None:
        flat = example.target.reshape(-1)
        for i in range(flat.size):
            if flat[i] not in (0.0, 1.0):
                for v in (0.0, 1.0):
                    changed = flat.copy()
                    changed[i] = v
                    yield replace(example, target=changed.reshape(example.target.shape))


def shrink(example: Example, holds: Callable[[Example], bool], spent: Callable[[], bool],
           max_tries: int = 2000) -> tuple[Example, int, bool]:
    """(the smallest example found that `holds`, tries, whether it finished before the budget)."""
    tries = 0
    while True:
        for candidate in candidates(example):
            if spent() or tries >= max_tries:
                return example, tries, False
            tries += 1
            if holds(candidate):
                example = candidate
                break
        else:
            return example, tries, True
