"""What an op is: one object holding everything the suite knows about it.

Each op lives in its own module under `reference/ops/` and defines `OP = Op(...)`: the
case fields it takes, its exact formula, the variant mechanisms its implementations can
have, the layout of its outputs and its part of the default catalog. The case loader,
the golden writer, the catalog, the adapters' layout helpers and the report read these
properties; nothing branches on an op's name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np

from .semantics import Semantics


@dataclass(frozen=True)
class OpFields:
    """Which case fields an op takes."""

    targets: tuple[str, ...] = ()  # "index", "probs" (class-axis rows), "binary" (elementwise)
    weight: str = ""  # "class": one per class; "element": the input's shape or its last dim
    pos_weight: bool = False  # one per entry of the last dim
    ignore_index: bool = False
    label_smoothing: bool = False
    reduction: bool = True
    ndims: tuple[int, ...] = ()  # allowed input ranks; () = any


@dataclass(frozen=True)
class ExactInputs:
    """A case's inputs as exact values in one dtype (object arrays of Fraction or specials),
    canonical layout: class axis at dim 1 (dim 0 unbatched)."""

    x: np.ndarray
    target: np.ndarray | None = None  # int64 class indices, or exact values
    weight: np.ndarray | None = None
    pos_weight: np.ndarray | None = None
    target_kind: str | None = None
    ignore_index: int = -100
    label_smoothing: Fraction = Fraction(0)
    reduction: str = "none"


@dataclass(frozen=True)
class Op:
    name: str
    fields: OpFields
    evaluate: Callable[[ExactInputs, Semantics], object]  # -> losses.Outputs
    # the variant mechanisms an implementation of this op can have (semantics.VARIANTS names)
    variants: tuple[str, ...] = ()
    # a further restriction by the case's parameters: admits(variant name, inputs) -> bool
    admits: Callable[[str, ExactInputs], bool] = field(default=lambda name, inputs: True)
    input_kind: str = "logits"  # "logits", "log_probs" or "probs": what the input holds
    loss_per_class: bool = False  # the loss output has the input's shape, class axis included
    catalog: Callable[[], list[dict]] = field(default=lambda: [])  # case tables (reference.catalog)
    doc: str = ""  # its section of docs/semantics.md
    short: str = ""  # prefix of its catalog case ids

    @property
    def has_targets(self) -> bool:
        return bool(self.fields.targets)

    def variants_for(self, inputs: ExactInputs) -> list[str]:
        return [v for v in self.variants if self.admits(v, inputs)]
