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
from reference.golden import OUTPUTS, Expected, GoldenCase

TOL_FACTOR = 4

CONFORMS, VARIANT, INACCURATE, SPECIAL_MISMATCH = "conforms", "variant", "inaccurate", "special_mismatch"
RAISED, NO_ERROR, UNSUPPORTED, CRASHED, SHAPE_MISMATCH = "raised", "no_error", "unsupported", "crashed", "shape_mismatch"
VERDICTS = (CONFORMS, VARIANT, INACCURATE, SPECIAL_MISMATCH, SHAPE_MISMATCH, RAISED, NO_ERROR, CRASHED, UNSUPPORTED)
# not the classifier's: what `xent discover` calls a metamorphic relation that does not hold
# (conformance/discover/relations.py); its variant is the relation's name
RELATION = "relation"


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


KIND_NAMES = ("finite", "+inf", "-inf", "nan")  # an element's kind; classify works on their codes 0..3


def kind_codes(v: np.ndarray) -> np.ndarray:
    """Each element's index in KIND_NAMES: small integers, cheaper to compare than the names."""
    codes = np.zeros(np.shape(v), dtype=np.int8)
    if np.isfinite(v).all():  # the common case: one test
        return codes
    codes[v == np.inf] = 1
    codes[v == -np.inf] = 2
    codes[np.isnan(v)] = 3
    return codes


def kinds(v: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(v), "nan", np.where(v == np.inf, "+inf", np.where(v == -np.inf, "-inf", "finite")))


def summarize_kinds(k: np.ndarray) -> str:
    present = [name for name in KIND_NAMES if (k == name).any()]
    return "/".join(present) if present else "empty"


def summarize_codes(codes: np.ndarray) -> str:
    """summarize_kinds of kind_codes."""
    counts = np.bincount(codes.reshape(-1), minlength=len(KIND_NAMES))
    present = [name for name, n in zip(KIND_NAMES, counts) if n]
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


@dataclass(frozen=True, eq=False)
class Reference:
    """One expected output under one semantics, with all that classify derives from it alone:
    computed once per (case, dtype, output, semantics), not once per observation."""

    shape: tuple
    exp: np.ndarray  # exact float64 values
    codes: np.ndarray  # kind_codes(exp)
    finite: np.ndarray
    ulp: np.ndarray
    tol: np.ndarray  # max(TOL_FACTOR u cond, ulp), per element
    kind: str  # summarize_codes(codes)
    shown: str  # show(exp)


def reference(expected: Expected, dtype: str) -> Reference:
    exp = values(expected.bits, dtype)
    codes = kind_codes(exp)
    with np.errstate(over="ignore", invalid="ignore"):
        u = float(FORMATS[dtype].unit_roundoff)
        spacing = ulp(exp, dtype)
        tol = np.maximum(TOL_FACTOR * u * expected.cond, spacing)
    return Reference(exp.shape, exp, codes, codes == 0, spacing, tol, summarize_codes(codes), show(exp))


def _compare(ref: Reference, observed: np.ndarray, codes: np.ndarray, where_always: bool = False) -> Comparison:
    """The observed values (and their kind codes) against one reference; same shape. `worst`
    is written only for an output that does not conform (or `where_always`)."""
    exp = ref.exp
    kinds_match = bool((ref.codes == codes).all())
    both = ref.finite & (codes == 0)
    if not both.any():
        return Comparison(kinds_match, kinds_match, math.nan, math.nan, math.nan, math.nan, "")
    with np.errstate(over="ignore", invalid="ignore"):
        err = np.where(both, np.abs(observed - exp), 0.0)
        tol = ref.tol
        ulps = np.where(both, err / ref.ulp, 0.0)
        ratio = np.where(both, err / tol, -1.0)
        worst = int(np.argmax(ratio))
    within = bool((err <= tol).all())
    where = ""
    if where_always or not (kinds_match and within):
        index = np.unravel_index(worst, exp.shape) if exp.ndim else ()
        where = (f"at {tuple(int(i) for i in index)}: " if exp.ndim else "") + \
            f"expected {float(exp.reshape(-1)[worst])!r}, got {float(observed.reshape(-1)[worst])!r}, " \
            f"tolerance {tol.reshape(-1)[worst]:.3g}"
    return Comparison(kinds_match and within, kinds_match, float(ulps.max()), float(err.max()),
                      float(ratio.max()), float(np.median(ulps[both])), where)


def compare(expected: Expected, dtype: str, observed: np.ndarray) -> Comparison:
    return _compare(reference(expected, dtype), observed, kind_codes(observed), where_always=True)


class Prepared:
    """The expected outputs of one (case, dtype, output), one per semantics, canonical first,
    turned into References when first needed (a variant's only when the canonical result does
    not conform), and the verdicts already given, by observation: the functional and module
    form of an API, or two frameworks, often return the very same bits. Shared by threads:
    a race only computes a value twice."""

    def __init__(self, expected: dict[str, Expected], dtype: str):
        self.expected, self.dtype = expected, dtype
        self.refs: dict[str, Reference] = {}
        self.verdicts: dict[tuple, Verdict] = {}

    def ref(self, name: str) -> Reference:
        found = self.refs.get(name)
        if found is None:
            found = self.refs[name] = reference(self.expected[name], self.dtype)
        return found


def prepare(case: GoldenCase, arrays: dict, dtype: str) -> dict[str, Prepared] | None:
    """Each output's expected values in one dtype, under every semantics, Prepared (None for a
    case that expects an error)."""
    if case.expect_error:
        return None
    expected = case.expected(arrays, dtype)
    return {o: Prepared({name: e[o] for name, e in expected.items()}, dtype) for o in OUTPUTS}


def classify(expected: "dict[str, Expected] | Prepared | None", expect_error: str | None,
             observed: Observed, dtype: str, domain_errors: tuple[str, ...] = ()) -> Verdict:
    """expected: {semantics name: Expected} for this output and dtype, canonical first (or them
    Prepared, for many observations); domain_errors: the exception types by which the
    framework rejects invalid input."""
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
        kind = summarize_codes(kind_codes(got))
        return Verdict(NO_ERROR, f"returned {kind}; expected a {expect_error}", "error", kind,
                       observed_values=show(got))
    prepared = expected if isinstance(expected, Prepared) else Prepared(expected, dtype)
    canonical = prepared.ref("canonical")
    if observed.status == RAISED:
        return Verdict(RAISED, observed.message, canonical.kind, "error", expected_values=canonical.shown)
    key = (observed.dtype, observed.bits.shape, observed.bits.tobytes())
    found = prepared.verdicts.get(key)
    if found is None:
        found = prepared.verdicts[key] = _judge(prepared, canonical, observed, dtype)
    return found


def classify_task(expected: "dict[str, Prepared] | None", expect_error: str | None,
                  observed: dict[str, Observed], dtype: str, domain_errors: tuple[str, ...] = ()) -> dict[str, Verdict]:
    """Each output of one task (its loss and its gradient) classified, and a variant not named
    where the task contradicts it: an output loses a variant's name when the task's other output
    disagrees with that variant while it agrees with another semantics (canonical, or another
    variant). A mechanism gives both outputs; a gradient that happens to equal another
    mechanism's (torch's BCE gradient 0 at p = t = 0, Keras' clipped gradient 0 there) is not
    given that mechanism's name when the loss shows a different one: another shape, or a value
    that another semantics explains and this one does not (within the tolerance: where both
    explain it, as in float32 at p = t = 0, both names stay). An other output that agrees with
    no semantics (a second, independent divergence) or has no value to compare contradicts
    nothing. (Bit-for-bit evidence was tried and dropped: a framework's own rounding lands on
    another semantics' bits often enough to turn known divergences into false alarms.)"""
    found = {o: classify(None if expected is None else expected[o], expect_error, observed[o], dtype, domain_errors)
             for o in observed}
    if expected is None:
        return found
    for output, verdict in found.items():
        if verdict.verdict != VARIANT:
            continue
        kept = tuple(name for name in verdict.variants
                     if not any(_contradicts(expected[other], name, observed[other]) for other in observed if other != output))
        if kept != verdict.variants:
            found[output] = _judge(expected[output], expected[output].ref("canonical"), observed[output], dtype,
                                   admitted=kept)
    return found


def _contradicts(prepared: Prepared, name: str, observed: Observed) -> bool:
    """Whether an output disagrees with a variant: it has another shape than the variant gives
    (a mechanism decides its outputs' shapes), or other values while it agrees with another
    semantics' (False when it has no value to compare: an error)."""
    if observed.status != "ok" or name not in prepared.expected:
        return False
    got = values(observed.bits, observed.dtype)
    codes = kind_codes(got)

    def agrees(semantics: str) -> bool:
        ref = prepared.ref(semantics)
        return ref.shape == got.shape and _compare(ref, got, codes).conforms

    if prepared.ref(name).shape != got.shape:
        return True
    return not agrees(name) and any(agrees(other) for other in prepared.expected if other != name)


def _judge(prepared: Prepared, canonical: Reference, observed: Observed, dtype: str,
           admitted: tuple[str, ...] | None = None) -> Verdict:
    """`admitted`: the variants that may be named (every one when None)."""
    got = values(observed.bits, observed.dtype)
    codes = kind_codes(got)
    exp_kind = canonical.kind
    shown = dict(expected_values=canonical.shown, observed_values=show(got))
    note = f" (returned {observed.dtype} for a {dtype} case)" if observed.dtype != dtype else ""
    obs_kind = summarize_codes(codes)

    def matching() -> list[str]:  # the variants it equals, in the order the golden file lists them
        found = []
        for name, e in prepared.expected.items():
            if admitted is not None and name not in admitted:
                continue
            if name != "canonical" and e.bits.shape == got.shape and _compare(prepared.ref(name), got, codes).conforms:
                found.append(name)
        return found

    if canonical.shape != got.shape:
        names = matching()
        if names:
            return Verdict(VARIANT, ", ".join(names) + note, exp_kind, obs_kind, **shown, variants=tuple(names))
        return Verdict(SHAPE_MISMATCH, f"expected shape {tuple(canonical.shape)}, got {tuple(got.shape)}{note}",
                       exp_kind, obs_kind, **shown)
    main = _compare(canonical, got, codes)
    metrics = dict(max_ulp=main.max_ulp, max_abs_err=main.max_abs_err, max_tol_ratio=main.max_tol_ratio,
                   median_ulp=main.median_ulp, **shown)
    if main.conforms:  # the variants are not looked at
        return Verdict(CONFORMS, "within tolerance" + note, exp_kind, obs_kind, **metrics)
    names = matching()
    if names:
        return Verdict(VARIANT, ", ".join(names) + note, exp_kind, obs_kind, **metrics, variants=tuple(names))
    if not main.kinds_match:
        return Verdict(SPECIAL_MISMATCH, f"expected {exp_kind}, got {obs_kind}{note}", exp_kind, obs_kind, **metrics)
    return Verdict(INACCURATE, f"{main.worst} ({main.max_ulp:.3g} ulp){note}", exp_kind, obs_kind, **metrics)
