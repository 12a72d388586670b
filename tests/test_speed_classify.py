"""The runner's speed-ups change no verdict: the classifier (references prepared once per case,
variants compared only when needed, verdicts remembered by observation), the matcher's indexes
and the golden reader that decodes only some arrays give what the code before them gave. The
code before them is kept here, as it was, as the oracle."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conformance import report, verdicts
from conformance.expectations import Matcher, load_expectations
from conformance.results import observed_from_columns
from conformance.verdicts import (CONFORMS, CRASHED, INACCURATE, NO_ERROR, RAISED, SHAPE_MISMATCH, SPECIAL_MISMATCH,
                                  TOL_FACTOR, UNSUPPORTED, VARIANT, Comparison, Observed, Prepared, Verdict, classify,
                                  kinds, show, summarize_kinds, ulp, values)
from reference.formats import FORMATS
from reference.golden import OUTPUTS, Expected, GoldenCase, load_suite

from .conftest import ROOT

DEFAULT = ROOT / "cases" / "golden" / "default"


# --- the classifier and matcher as they were (oracles) -------------------------------------

def old_compare(expected: Expected, dtype: str, observed: np.ndarray) -> Comparison:
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


def old_classify(expected, expect_error, observed, dtype, domain_errors=()) -> Verdict:
    if observed.status == UNSUPPORTED:
        return Verdict(UNSUPPORTED, observed.message, "-", "unsupported")
    if observed.status == CRASHED:
        return Verdict(CRASHED, observed.message, "error" if expect_error else "-", "crashed")
    if expect_error:
        if observed.status == RAISED and observed.error_type in domain_errors:
            return Verdict(CONFORMS, f"raised as expected: {observed.message}", "error", "error")
        if observed.status == RAISED:
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
    results = {name: old_compare(e, dtype, got) for name, e in expected.items() if e.bits.shape == got.shape}
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


def old_match(entries, row):
    """Matcher.match as it was: every entry's globs for every row; returns (found, in scope)."""
    row = {**row, "params": json.loads(row["params"])}
    return next((e for e in entries if e.explains(row)), None), [e.id for e in entries if e.covers(row)]


def same(a: Verdict, b: Verdict) -> bool:
    return repr(a) == repr(b)  # NaN metrics print alike; every field compared


# --- random observations ------------------------------------------------------------------

def special_bits(fmt, rng, n: int) -> np.ndarray:
    """Bit patterns mixing NaN, +-inf, +-0, subnormals, the extremes and random values."""
    storage = np.dtype(fmt.storage)
    width = storage.itemsize * 8
    top = 1 << (width - 1)
    inf = fmt.exp_mask << fmt.frac_bits
    picks = [0, top, inf, top | inf, inf | 1, inf | (1 << (fmt.frac_bits - 1)), 1, top | 1,
             (1 << fmt.frac_bits) - 1, inf - 1, top | (inf - 1), 1 << fmt.frac_bits]
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.35:
            out.append(picks[rng.integers(len(picks))])
        else:
            out.append(int(rng.integers(0, 1 << width, dtype=np.uint64)))
    return np.array(out, dtype=np.uint64).astype(storage)


def nudged(bits: np.ndarray, rng) -> np.ndarray:
    """A few ulps off in places (the integer neighbours of the bit patterns), or equal."""
    step = rng.integers(-3, 4, size=bits.shape)
    step[rng.random(bits.shape) < 0.5] = 0
    return (bits.astype(np.int64) + step).astype(bits.dtype)


def random_conds(rng, shape) -> np.ndarray:
    pool = np.array([0.0, 1.0, 3.5, 1e3, 1e300, math.inf, math.nan, 2.0 ** -30])
    conds = rng.choice(pool, size=shape)
    return np.where(rng.random(shape) < 0.5, rng.random(shape) * 10, conds)


def random_observation(rng, expected, dtype, shape):
    fmt = FORMATS[dtype]
    r = rng.random()
    if r < 0.05:
        return Observed(rng.choice([UNSUPPORTED, CRASHED]), message="why")
    if r < 0.12:
        return Observed(RAISED, message="ValueError: no", error_type=str(rng.choice(["ValueError", "IndexError"])))
    if r < 0.17:  # another dtype
        other = str(rng.choice([d for d in FORMATS if d != dtype]))
        return Observed("ok", other, special_bits(FORMATS[other], rng, int(np.prod(shape))).reshape(shape))
    if r < 0.22:  # another shape
        return Observed("ok", dtype, special_bits(fmt, rng, 3).reshape(3))
    if r < 0.5 and expected:  # near one of the semantics' values
        name = list(expected)[rng.integers(len(expected))]
        return Observed("ok", dtype, nudged(expected[name].bits, rng))
    if r < 0.6 and expected:
        return Observed("ok", dtype, expected["canonical"].bits.copy())
    return Observed("ok", dtype, special_bits(fmt, rng, int(np.prod(shape))).reshape(shape))


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_classify_gives_the_verdicts_of_the_classifier_before_it(dtype):
    rng = np.random.default_rng(sum(map(ord, dtype)))
    fmt = FORMATS[dtype]
    seen = set()
    for trial in range(150):
        shape = [(), (0,), (1,), (4,), (2, 3), (2, 3, 2)][trial % 6]
        n = int(np.prod(shape))
        canonical = special_bits(fmt, rng, n).reshape(shape)
        expected = {"canonical": Expected(canonical, random_conds(rng, shape))}
        for name in ("max_shift_inf_nan", "zero_times_inf_nan")[:trial % 3]:  # variants, one of another shape
            bits = nudged(canonical, rng) if rng.random() < 0.7 else special_bits(fmt, rng, 3).reshape(3)
            expected[name] = Expected(bits, random_conds(rng, bits.shape))
        prepared = Prepared(expected, dtype)  # shared across observations, as the runner shares it
        for _ in range(12):
            observed = random_observation(rng, expected, dtype, shape)
            old = old_classify(expected, None, observed, dtype, ("IndexError",))
            assert same(classify(expected, None, observed, dtype, ("IndexError",)), old), (expected, observed)
            assert same(classify(prepared, None, observed, dtype, ("IndexError",)), old), (expected, observed)
            err = old_classify(None, "domain error: x", observed, dtype, ("IndexError",))
            assert same(classify(None, "domain error: x", observed, dtype, ("IndexError",)), err)
            seen.add(old.verdict)
    # the sample reached every verdict an observation can get
    assert seen >= {CONFORMS, VARIANT, INACCURATE, SPECIAL_MISMATCH, SHAPE_MISMATCH, RAISED, UNSUPPORTED, CRASHED}


def test_the_default_suite_classifies_as_before_near_its_own_values():
    """A quarter of the default suite's cases, each dtype and output, observed at each
    semantics' bits and a few ulps off them, through one Prepared per (case, dtype) as the
    runner does."""
    rng = np.random.default_rng(7)
    for case in load_suite(DEFAULT)[::4]:
        if case.expect_error:
            continue
        arrays = case.arrays()
        for dtype in case.dtypes:
            expected = case.expected(arrays, dtype)
            prepared = verdicts.prepare(case, arrays, dtype)
            for output in OUTPUTS:
                per_sem = {name: e[output] for name, e in expected.items()}
                for name, e in per_sem.items():
                    for bits in (e.bits, nudged(e.bits, rng)):
                        observed = Observed("ok", dtype, bits)
                        assert same(classify(prepared[output], None, observed, dtype),
                                    old_classify(per_sem, None, observed, dtype)), (case.id, dtype, output, name)


def test_the_matcher_finds_what_it_found_before_on_a_stored_run():
    """Every row of the baseline run, matched by the indexed Matcher and by the old loop over
    every entry: the same explaining entry for each row, the same entries in scope."""
    df = report.read_results(ROOT / "baselines" / "default-cpu.parquet")
    expectations = load_expectations()
    for (framework, versions), rows in df.groupby(["framework", "versions"]):
        matcher = Matcher.build(expectations, framework, json.loads(versions))
        entries = matcher.by_framework[framework]
        for row in rows.to_dict("records"):
            found, scope = old_match(entries, row)
            assert [e.id for e in matcher.scope(row)] == scope, (row["case_id"], row["api"], row["output"])
            assert matcher.match(row) is found, (row["case_id"], row["api"], row["output"])


def test_arrays_where_decodes_what_np_load_decodes():
    for case in load_suite(DEFAULT):
        whole = case.arrays()
        fast = case.arrays_where()
        assert list(fast) == list(whole)
        for name, array in whole.items():
            assert fast[name].dtype == array.dtype and fast[name].shape == array.shape, (case.id, name)
            assert fast[name].tobytes() == array.tobytes() and fast[name].flags.writeable, (case.id, name)
        inputs = case.arrays_where(lambda name: name.startswith("input."))
        assert set(inputs) == {n for n in whole if n.startswith("input.")}


def test_arrays_where_reads_any_npz_np_load_reads(tmp_path):
    """Members stored uncompressed, Fortran order, big-endian, 0-d and empty: those the fast
    header pattern does not take go through np.lib.format, with the same arrays."""
    import hashlib

    arrays = {"plain": np.arange(6, dtype=np.uint16).reshape(2, 3), "fortran": np.asfortranarray(np.eye(3)),
              "big": np.arange(4, dtype=">f4"), "scalar": np.array(2.5), "empty": np.zeros((0, 3), np.uint32)}
    np.savez(tmp_path / "c.npz", **arrays)  # ZIP_STORED
    data = (tmp_path / "c.npz").read_bytes()
    case = GoldenCase(tmp_path, {"id": "c", "file": "c.npz", "sha256": hashlib.sha256(data).hexdigest()})
    whole, fast = case.arrays(), case.arrays_where()
    assert list(fast) == list(whole)
    for name, array in whole.items():
        assert fast[name].dtype == array.dtype and fast[name].shape == array.shape and np.array_equal(fast[name], array)


def test_a_stored_observation_classifies_as_before():
    """The rows of the baseline run, classified again from their stored bits both ways."""
    df = pd.read_parquet(ROOT / "baselines" / "default-cpu.parquet")
    cases = {c.id: c for c in load_suite(DEFAULT)}
    sample = df[df["case_id"].isin(cases) & ~df["verdict"].isin([UNSUPPORTED, CRASHED])]
    sample = sample.sample(n=min(600, len(sample)), random_state=3)
    decoded = {}
    for row in sample.to_dict("records"):
        case = cases[row["case_id"]]
        arrays = decoded.setdefault(case.id, case.arrays())
        observed = observed_from_columns(row)
        domain = tuple(d for d in row["domain_errors"].split(",") if d)
        if case.expect_error:
            per_sem, prepared = None, None
        else:
            per_sem = {n: e[row["output"]] for n, e in case.expected(arrays, row["dtype"]).items()}
            prepared = verdicts.prepare(case, arrays, row["dtype"])[row["output"]]
        old = old_classify(per_sem, case.expect_error, observed, row["dtype"], domain)
        assert same(classify(prepared, case.expect_error, observed, row["dtype"], domain), old)
