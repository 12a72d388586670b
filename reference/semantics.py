"""The canonical contract and its named variants (docs/semantics.md#variants).

A variant is one *mechanism* by which a real implementation departs from the exact
limits: a different mean denominator, an IEEE product where the contract absorbs
0 * inf, a row maximum subtracted before exp, a clip or a clamp. Each op says which
mechanisms its implementations can have (`reference.op.Op.variants`), so a variant is
only ever named where its mechanism exists.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

from .formats import FORMATS, FloatFormat, decode, round_fraction

CLIP_EPS = 1e-7
# torch's EPSILON in binary_cross_entropy_backward (aten/src/ATen/native/Loss.cpp): a float32
# constant (`constexpr float EPSILON = 1e-12`), which scalar_t(EPSILON) converts to the dtype
BCE_GRAD_EPS = 1e-12


@dataclass(frozen=True)
class Semantics:
    """The canonical contract, or one named variant of it."""

    name: str = "canonical"
    mean_by_count: bool = False  # mean divides by the number of non-ignored positions
    empty_mean_zero: bool = False  # an empty mean gives 0, not 0/0 = NaN
    zero_times_inf_nan: bool = False  # IEEE 0 * inf = NaN where a zero coefficient multiplies an infinite term
    max_shift_inf_nan: bool = False  # softmax rows shifted by their maximum: an infinite maximum gives inf - inf
    unit_target_mass_grad: bool = False  # probability-target gradient s - t, as if sum(t) == 1
    log_clamp: bool = False  # each log of a probability clamped below at -100
    mean_last_axis_first: bool = False  # elementwise losses averaged over the last axis first
    # transforms of probability inputs, applied in this order: "clip" (to [1e-7, 1 - 1e-7] as
    # rounded to the case dtype) and "renormalize" (divided by their sum along the class axis)
    prob_transforms: tuple[str, ...] = ()
    clip: tuple[Fraction, Fraction] | None = None  # set by for_dtype when "clip" is used
    # binary cross-entropy's gradient by torch's own formula, w (p - t) / max(p (1 - p), eps),
    # not the derivative of the loss: 0 where p = t in {0, 1}, capped where p (1 - p) < eps
    bce_grad_formula: bool = False
    grad_eps: Fraction | None = None  # set by for_dtype when bce_grad_formula: float32's 1e-12 in the case dtype


CANONICAL = Semantics()
VARIANTS = {
    v.name: v
    for v in (
        Semantics("mean_by_count", mean_by_count=True),
        Semantics("empty_mean_zero", empty_mean_zero=True),
        Semantics("zero_times_inf_nan", zero_times_inf_nan=True),
        Semantics("max_shift_inf_nan", max_shift_inf_nan=True),
        Semantics("unit_target_mass_grad", unit_target_mass_grad=True),
        Semantics("log_clamp_100", log_clamp=True),
        Semantics("clip_eps_1e-7", prob_transforms=("clip",)),
        Semantics("renormalize_probs", prob_transforms=("renormalize",)),
        Semantics("mean_last_axis_first", mean_last_axis_first=True),
        Semantics("bce_grad_eps_1e-12", bce_grad_formula=True),
        # combinations a framework documents, named in the order they apply
        Semantics("renormalize_probs+clip_eps_1e-7", prob_transforms=("renormalize", "clip")),
        Semantics("clip_eps_1e-7+renormalize_probs", prob_transforms=("clip", "renormalize")),
        Semantics("clip_eps_1e-7+renormalize_probs+mean_by_count", prob_transforms=("clip", "renormalize"),
                  mean_by_count=True),
        Semantics("renormalize_probs+clip_eps_1e-7+mean_by_count", prob_transforms=("renormalize", "clip"),
                  mean_by_count=True),
        Semantics("clip_eps_1e-7+mean_last_axis_first", prob_transforms=("clip",), mean_last_axis_first=True),
        Semantics("log_clamp_100+bce_grad_eps_1e-12", log_clamp=True, bce_grad_formula=True),
    )
}


def for_dtype(sem: Semantics, fmt: FloatFormat) -> Semantics:
    """Bind dtype-dependent constants: a framework's eps = 1e-7 and 1 - eps (computed in
    float64) become dtype values when they meet the tensor, and so does torch's gradient
    eps = 1e-12, a float32 constant (`scalar_t(EPSILON)`: float32's 1e-12 also in float64,
    and 0 in float16, where it underflows)."""
    f64, f32 = FORMATS["float64"], FORMATS["float32"]

    def in_dtype(v: Fraction) -> Fraction:
        return decode(fmt, round_fraction(fmt, v))

    if "clip" in sem.prob_transforms:
        eps = decode(f64, round_fraction(f64, Fraction(CLIP_EPS)))
        hi = decode(f64, round_fraction(f64, 1 - eps))
        sem = replace(sem, clip=(in_dtype(eps), in_dtype(hi)))
    if sem.bce_grad_formula:
        sem = replace(sem, grad_eps=in_dtype(decode(f32, round_fraction(f32, Fraction(BCE_GRAD_EPS)))))
    return sem
