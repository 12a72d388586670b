"""Verdicts: one observed output against the reference, by one policy for every framework.

Tolerance policy (docs/tolerance.md): a finite element conforms when
    |observed - expected| <= max(TOL_FACTOR * u * cond, ulp(expected))
where u is the unit roundoff of the case dtype, `cond` is the condition scale the
reference computed for that element, and ulp is the spacing of the dtype at the expected
value. Every element must also have the expected kind (finite, +inf, -inf, NaN).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reference.formats import FORMATS, to_float64
from reference.golden import Expected

TOL_FACTOR = 4

CONFORMS, VARIANT, INACCURATE, SPECIAL_MISMATCH = "conforms", "variant", "inaccurate", "special_mismatch"
RAISED, NO_ERROR, UNSUPPORTED, CRASHED, SHAPE_MISMATCH = "raised", "no_error", "unsupported", "crashed", "shape_mismatch"
VERDICTS = (CONFORMS, VARIANT, INACCURATE, SPECIAL_MISMATCH, SHAPE_MISMATCH, RAISED, NO_ERROR, CRASHED, UNSUPPORTED)


@dataclass(frozen=True)
class Observed:
    """One output as a framework gave it: values, or the exception it raised."""

    status: str  # ok | raised | unsupported | crashed
    dtype: str | None = None
    bits: np.ndarray | None = None
    message: str = ""
    error_type: str = ""  # the exception's class name when status is raised


@dataclass(frozen=True)
class Verdict:
    verdict: str
    detail: str
    expected_kind: str
    observed_kind: str
    max_ulp: float = math.nan
    max_abs_err: float = math.nan
    max_tol_ratio: float = math.nan  # the worst |error| / tolerance: above 1 is beyond tolerance
    median_ulp: float = math.nan
    expected_values: str = ""
    observed_values: str = ""
    variants: tuple[str, ...] = ()  # every variant the output equals (a variant verdict)


def values(bits: np.ndarray, dtype: str) -> np.ndarray:
    """Exact float64 values of bit patterns (every format here is a subset of float64)."""
    return to_float64(np.asarray(bits), FORMATS[dtype])


def ulp(expected: np.ndarray, dtype: str) -> np.ndarray:
    fmt = FORMATS[dtype]
    _, exponent = np.frexp(np.where(np.isfinite(expected), expected, 1.0))  # |e| in [2**(k-1), 2**k)
    exponent = np.where(expected == 0, fmt.emin, exponent - 1)  # frexp(0) has exponent 0
    return np.ldexp(1.0, np.maximum(exponent, fmt.emin) - fmt.frac_bits)


def kinds(v: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(v), "nan", np.where(v == np.inf, "+inf", np.where(v == -np.inf, "-inf", "finite")))


def summarize_kinds(k: np.ndarray) -> str:
    present = [name for name in ("finite", "+inf", "-inf", "nan") if (k == name).any()]
    return "/".join(present) if present else "empty"


def show(v: np.ndarray, limit: int = 8) -> str:
    flat = v.reshape(-1)
    text = ", ".join(repr(float(x)) for x in flat[:limit])
    text += ", ..." if flat.size > limit else ""
    return f"[{text}]" if v.ndim else text


@dataclass(frozen=True)
class Comparison:
    conforms: bool
    kinds_match: bool
    max_ulp: float
    max_abs_err: float
    max_tol_ratio: float
    median_ulp: float
    worst: str  # where it is furthest off, for the detail


def compare(expected: Expected, dtype: str, observed: np.ndarray) -> Comparison:
    exp = values(expected.bits, dtype)
    k_exp, k_obs = kinds(exp), kinds(observed)
    kinds_match = bool((k_exp == k_obs).all())
    both = (k_exp == "finite") & (k_obs == "finite")
    if not both.any():
        return Comparison(kinds_match, kinds_match, math.nan, math.nan, math.nan, math.nan, "")
    with np.errstate(over="ignore", invalid="ignore"):
        err = np.where(both, np.abs(observed - exp), 0.0)
        u = float(FORMATS[dtype].unit_roundoff)
        tol = np.maximum(TOL_FACTOR * u * expected.cond, ulp(exp, dtype))
        ulps = np.where(both, err / ulp(exp, dtype), 0.0)
        ratio = np.where(both, err / tol, -1.0)
        worst = int(np.argmax(ratio))
    within = bool((err <= tol).all())
    index = np.unravel_index(worst, exp.shape) if exp.ndim else ()
    where = (f"at {tuple(int(i) for i in index)}: " if exp.ndim else "") + \
        f"expected {float(exp.reshape(-1)[worst])!r}, got {float(observed.reshape(-1)[worst])!r}, " \
        f"tolerance {tol.reshape(-1)[worst]:.3g}"
    return Comparison(kinds_match and within, kinds_match, float(ulps.max()), float(err.max()),
                      float(ratio.max()), float(np.median(ulps[both])), where)


def classify(expected: dict[str, Expected] | None, expect_error: str | None,
             observed: Observed, dtype: str, domain_errors: tuple[str, ...] = ()) -> Verdict:
    """expected: {semantics name: Expected} for this output and dtype, canonical first;
    domain_errors: the exception types by which the framework rejects invalid input."""
    if observed.status == UNSUPPORTED:
        return Verdict(UNSUPPORTED, observed.message, "-", "unsupported")
    if observed.status == CRASHED:
        return Verdict(CRASHED, observed.message, "error" if expect_error else "-", "crashed")
    if expect_error:
        if observed.status == RAISED and observed.error_type in domain_errors:
            return Verdict(CONFORMS, f"raised as expected: {observed.message}", "error", "error")
        if observed.status == RAISED:  # an error, but not one the framework declares for bad input
            return Verdict(RAISED, f"not a domain error of this framework: {observed.message}", "error", "error")
        got = values(observed.bits, observed.dtype)
        return Verdict(NO_ERROR, f"returned {summarize_kinds(kinds(got))}; expected a {expect_error}",
                       "error", summarize_kinds(kinds(got)), observed_values=show(got))
    canonical = expected["canonical"]
    exp = values(canonical.bits, dtype)
    exp_kind = summarize_kinds(kinds(exp))
    if observed.status == RAISED:
        return Verdict(RAISED, observed.message, exp_kind, "error", expected_values=show(exp))

    got = values(observed.bits, observed.dtype)
    shown = dict(expected_values=show(exp), observed_values=show(got))
    note = f" (returned {observed.dtype} for a {dtype} case)" if observed.dtype != dtype else ""
    obs_kind = summarize_kinds(kinds(got))
    results = {name: compare(e, dtype, got) for name, e in expected.items() if e.bits.shape == got.shape}
    matching = [name for name, c in results.items() if name != "canonical" and c.conforms]
    if "canonical" not in results:
        if matching:
            return Verdict(VARIANT, ", ".join(matching) + note, exp_kind, obs_kind, **shown, variants=tuple(matching))
        return Verdict(SHAPE_MISMATCH, f"expected shape {tuple(exp.shape)}, got {tuple(got.shape)}{note}",
                       exp_kind, obs_kind, **shown)
    main = results["canonical"]
    metrics = dict(max_ulp=main.max_ulp, max_abs_err=main.max_abs_err, max_tol_ratio=main.max_tol_ratio,
                   median_ulp=main.median_ulp, **shown)
    if main.conforms:
        return Verdict(CONFORMS, "within tolerance" + note, exp_kind, obs_kind, **metrics)
    if matching:
        return Verdict(VARIANT, ", ".join(matching) + note, exp_kind, obs_kind, **metrics, variants=tuple(matching))
    if not main.kinds_match:
        return Verdict(SPECIAL_MISMATCH, f"expected {exp_kind}, got {obs_kind}{note}", exp_kind, obs_kind, **metrics)
    return Verdict(INACCURATE, f"{main.worst} ({main.max_ulp:.3g} ulp){note}", exp_kind, obs_kind, **metrics)
