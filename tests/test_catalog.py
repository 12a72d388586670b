"""The default catalog names every variant by its own mechanism: for each variant there is
a case where an output equal to that variant's is classified as that variant alone."""
import json


from conformance.verdicts import VARIANT, Observed, Prepared, classify_task
from reference.golden import OUTPUTS, load_suite
from reference.ops import OPS
from reference.semantics import VARIANTS

from .conftest import ROOT

GOLDEN = ROOT / "cases" / "golden" / "default"
SUITE = load_suite(GOLDEN)


def named_alone():
    """{variant: a (case, dtype, output) where, a framework returning the variant's loss and
    gradient, an output is classified as it and nothing else (classify_task: a variant is named
    where it explains both outputs)}."""
    found = {}
    for case in SUITE:
        if case.expect_error:
            continue
        arrays = case.arrays()
        for dtype in case.dtypes:
            expected = case.expected(arrays, dtype)
            prepared = {o: Prepared({n: e[o] for n, e in expected.items()}, dtype) for o in OUTPUTS}
            for name in expected:
                if name == "canonical" or name in found:
                    continue
                observed = {o: Observed("ok", dtype, expected[name][o].bits) for o in OUTPUTS}
                for output, v in classify_task(prepared, None, observed, dtype).items():
                    if v.verdict == VARIANT and v.variants == (name,):
                        found[name] = (case.id, dtype, output)
                        break
    return found


def test_every_variant_is_named_alone_on_some_case():
    found = named_alone()
    assert set(found) == set(VARIANTS), f"never named alone: {sorted(set(VARIANTS) - set(found))}"


def test_variants_only_where_their_op_has_the_mechanism():
    for case in SUITE:
        for dtype, names in case.entry["variants"].items():
            assert set(names) <= set(OPS[case.op].variants), (case.id, names)


def test_max_shift_and_not_zero_times_inf_names_inf_row_with_index_target():
    """[inf, 0, 1] with a class-index target: a NaN loss is explained by the max shift only."""
    case = next(c for c in SUITE if c.id == "cat-ce-pos-inf-target-on")
    for dtype in case.dtypes:
        assert "max_shift_inf_nan" in case.entry["variants"][dtype]
        assert "zero_times_inf_nan" not in case.entry["variants"][dtype]


def test_manifest_counts_and_size():
    manifest = json.loads((GOLDEN / "manifest.json").read_text())
    assert manifest["counts"]["cases"] == len(SUITE) > 400
    for feature in ("op:nll_loss", "op:cross_entropy_from_probs", "op:binary_cross_entropy",
                    "op:binary_cross_entropy_with_logits", "op:multilabel_soft_margin_loss", "pos_weight",
                    "value:-0", "target:binary", "all_ignored", "domain_error", "zero_weight_sum"):
        assert manifest["counts"]["by_feature"].get(feature, 0) > 0, feature
    size = sum(p.stat().st_size for p in GOLDEN.iterdir())
    assert size < 8 * 2**20  # small enough for git; README states the size


def test_catalog_ids_are_prefixed_by_their_op():
    from reference.catalog import catalog_tables
    for table in catalog_tables():
        op = OPS[table["op"]]
        assert table["id"].split("-")[1] in (op.short, "shape", "cep") or table["id"].startswith("cat-shape-"), table["id"]
