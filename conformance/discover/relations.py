"""Metamorphic relations: what a framework's answer must satisfy whatever its rounding.

A row's loss under reduction `none` is a function of that row alone; so is its gradient.
Computing a row alone or inside a batch, or the batch in another order, runs the same
arithmetic on the same values: the relation holds in every rounding, so it is checked bit for
bit (NaN against NaN whatever the payload). A framework promises nothing about how it rounds,
but a result that depends on the other rows of the batch, or on their order, is batch
variance, a finding of its own.

Relations that hold only within tolerance (class permutation, class-index targets against
one-hot probabilities, an ignored position against the position dropped, a K-dim input
against its (N*d, C) flattening) are not checked as relations: each side is a case the
reference judges exactly, which is the stronger check (docs/discover.md).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np

from reference.ops import OPS

from ..results import ResultRow, observed_from_columns
from ..verdicts import RELATION, values
from .strategies import Example


def _batched(example: Example) -> bool:
    op = OPS[example.op]
    per_row = not op.fields.reduction or example.reduction == "none"
    return example.input.ndim >= 2 and example.input.shape[0] >= 2 and per_row


def _rows(example: Example, index) -> Example:
    """The example's batch rows `index` (a list): input, targets and elementwise weights alike."""
    take = lambda a: None if a is None else a[index]  # noqa: E731
    weight = example.weight
    if weight is not None and weight.shape == example.input.shape:
        weight = weight[index]
    target = example.target
    if target is not None and target.ndim >= 1:
        target = target[index]
    return replace(example, input=take(example.input), target=target, weight=weight)


@dataclass(frozen=True)
class Relation:
    name: str
    about: str
    applies: Callable[[Example], bool]
    transform: Callable[[Example], Example]
    # the other's batch rows that correspond to the example's rows 0..n-1 (or a subset): (mine, theirs)
    pairs: Callable[[Example], tuple[list[int], list[int]]]


RELATIONS = (
    Relation("batch_invariance", "a row's loss and gradient computed alone equal that row's inside the batch",
             _batched, lambda e: _rows(e, [0]), lambda e: ([0], [0])),
    Relation("batch_order", "the batch reversed gives each row's loss and gradient unchanged",
             _batched, lambda e: _rows(e, list(range(e.input.shape[0] - 1, -1, -1))),
             lambda e: (list(range(e.input.shape[0])), list(range(e.input.shape[0] - 1, -1, -1)))),
)


def _bits(row: ResultRow) -> np.ndarray | None:
    observed = observed_from_columns(vars(row))
    return observed.bits if observed.status == "ok" else None


def _same(a: np.ndarray, b: np.ndarray, dtype: str) -> bool:
    """Bit for bit, a NaN against a NaN whatever its payload."""
    nan_a, nan_b = np.isnan(values(a, dtype)), np.isnan(values(b, dtype))
    return bool(np.array_equal(nan_a, nan_b) and np.array_equal(a[~nan_a], b[~nan_b]))


def violated(relation: Relation, mine: list[ResultRow], theirs: list[ResultRow],
             example: Example, matcher=None) -> list[tuple[dict, str]]:
    """(a row for the signature, what differs) for every (API, mode, dtype, output) whose outputs
    both have values and break the relation: the example's row, its verdict `relation` and its
    variant the relation's name, matched against the expectations (`matcher`, an
    expectations.Matcher: a cause may explain a relation as it explains a verdict)."""
    other = {(r.api, r.mode, r.dtype, r.output): r for r in theirs}
    found = []
    rows_mine, rows_theirs = relation.pairs(example)
    for row in mine:
        twin = other.get((row.api, row.mode, row.dtype, row.output))
        a, b = _bits(row), _bits(twin) if twin is not None else None
        if a is None or b is None or a.ndim == 0 or b.ndim == 0:
            continue  # an exception, or a reduced output: nothing to compare row by row
        if a.shape[0] <= max(rows_mine) or b.shape[0] <= max(rows_theirs):
            continue
        if not _same(a[rows_mine], b[rows_theirs], row.observed_dtype):
            differing = [i for i, j in zip(rows_mine, rows_theirs) if not _same(a[[i]], b[[j]], row.observed_dtype)]
            detail = f"{relation.about}: rows {differing} differ in their bits"
            sig_row = {**asdict(row), "verdict": RELATION, "variants": relation.name, "detail": detail, "known": ""}
            known = matcher.match(sig_row) if matcher is not None else None
            sig_row["known"] = known.id if known else ""
            found.append((sig_row, detail))
    return found
