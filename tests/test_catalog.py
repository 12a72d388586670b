"""The default catalog: every variant is separated from the canonical result by some case."""
import numpy as np

from conformance.verdicts import TOL_FACTOR, kinds, ulp, values
from reference import ops
from reference.formats import FORMATS
from reference.golden import OUTPUTS, load_suite

SUITE = load_suite("cases/golden/default")


def separates(canonical, variant, dtype) -> bool:
    if canonical.bits.shape != variant.bits.shape:
        return True
    c, v = values(canonical.bits, dtype), values(variant.bits, dtype)
    if (kinds(c) != kinds(v)).any():
        return True
    finite = np.isfinite(c)
    u = float(FORMATS[dtype].unit_roundoff)
    tol = np.maximum(TOL_FACTOR * u * canonical.cond, ulp(c, dtype))
    with np.errstate(invalid="ignore"):  # inf - inf where both are infinite: not compared
        return bool((np.abs(c - v)[finite] > tol[finite]).any())


def test_every_variant_has_a_case_that_separates_it_beyond_tolerance():
    separated = set()
    for case in SUITE:
        if case.expect_error:
            continue
        arrays = case.arrays()
        for dtype in case.dtypes:
            expected = case.expected(arrays, dtype)
            for name, outputs in expected.items():
                if name != "canonical" and any(separates(expected["canonical"][o], outputs[o], dtype) for o in OUTPUTS):
                    separated.add(name)
    assert separated == set(ops.VARIANTS), f"never separated: {sorted(set(ops.VARIANTS) - separated)}"


def test_manifest_counts_and_size():
    import json
    from pathlib import Path
    manifest = json.loads(Path("cases/golden/default/manifest.json").read_text())
    assert manifest["counts"]["cases"] == len(SUITE) > 400
    for feature in ("op:nll_loss", "op:cross_entropy_from_probs", "op:binary_cross_entropy",
                    "op:binary_cross_entropy_with_logits", "op:multilabel_soft_margin_loss", "pos_weight",
                    "value:-0", "target:binary", "all_ignored", "domain_error"):
        assert manifest["counts"]["by_feature"].get(feature, 0) > 0, feature
    size = sum(p.stat().st_size for p in Path("cases/golden/default").iterdir())
    assert size < 8 * 2**20  # small enough for git; README states the size
