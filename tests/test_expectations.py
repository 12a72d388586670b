"""Expectations keyed by cause: matching by data, version scopes, stale entries, the loader's
errors, and the matrix's check."""
import json

import pytest

from conformance.adapters import FRAMEWORKS
from conformance.expectations import (DEFAULT_PATH, NO_WITNESSES, ExpectationsError, Matcher, load_expectations,
                                      witnesses_from)
from conformance.matrix import check


def write(tmp_path, text):
    path = tmp_path / "e.toml"
    path.write_text(text)
    return path


ENTRY = """
[[cause]]
id = "keras-mean"
frameworks = ["tensorflow"]
apis = ["keras.losses.Sparse*"]
params = { target_kind = "index", reduction = "mean" }
features = ["weight"]
verdicts = ["variant"]
variant = "*mean_by_count"
requires = ["keras>=3.3"]
reason = "divides by the count"
evidence = "https://github.com/keras-team/keras/issues/19740"
"""


def row(**kw):
    base = dict(framework="tensorflow", api="keras.losses.SparseCategoricalCrossentropy", op="cross_entropy", known="",
                suite="default", case_sha256="0" * 64,
                case_id="onnx-sce-weight-ii", features="op:cross_entropy,weight,ignore_index",
                params=json.dumps({"target_kind": "index", "reduction": "mean", "weighted": True}),
                dtype="float32", device="cpu", device_name="some CPU", mode="eager", output="loss", verdict="variant",
                detail="mean_by_count", variants="mean_by_count")
    base.update(kw)
    return base


def test_a_cause_matches_any_case_with_its_features_and_parameters(tmp_path):
    (e,) = load_expectations(write(tmp_path, ENTRY), FRAMEWORKS)
    assert e.explains(row())  # a user's case id, never listed anywhere
    assert e.accepted(row(variants="clip_eps_1e-7+renormalize_probs+mean_by_count")) != ""
    assert not e.explains(row(framework="torch"))
    assert not e.explains(row(variants="empty_mean_zero", detail="empty_mean_zero"))
    assert not e.explains(row(params=json.dumps({"target_kind": "index", "reduction": "sum"})))
    assert not e.explains(row(features="op:cross_entropy,ignore_index"))
    assert not e.explains(row(verdict="inaccurate"))
    assert not e.explains(row(api="tf.nn.sparse_softmax_cross_entropy_with_logits"))


@pytest.mark.parametrize("versions, applies", [
    ({"keras": "3.15.1"}, True), ({"keras": "3.3.0"}, True), ({"keras": "3.2.9"}, False),
    ({"keras": "3.4.0.dev20260101"}, True), ({"keras": "3.3.0rc1"}, False),  # a pre-release of 3.3 precedes 3.3
    ({"keras": "3.15.1+cpu"}, True), ({"keras": "3.3.0+cu130"}, True),  # local labels do not count
    ({}, False),  # a runtime without keras: the entry does not hold for it
])
def test_requires_is_evaluated_against_the_runtime(tmp_path, versions, applies):
    (e,) = load_expectations(write(tmp_path, ENTRY), FRAMEWORKS)
    assert e.applies_to(versions) is applies


WITNESS = dict(suite="default", case_sha256="0" * 64)


def test_matcher_reports_entries_whose_witnesses_ran_and_explained_nothing(tmp_path):
    entries = load_expectations(write(tmp_path, ENTRY), FRAMEWORKS)
    witnesses = witnesses_from([row(**WITNESS, known="keras-mean")])
    conforming = row(**WITNESS, verdict="conforms", detail="within tolerance", variants="")
    matcher = Matcher.build(entries, "tensorflow", {"keras": "3.15.1"}, witnesses)
    assert matcher.match(conforming) is None
    assert matcher.stale() == ["keras-mean"]  # its witness ran and conforms now: the framework changed
    assert matcher.match(row(**WITNESS)).id == "keras-mean" and matcher.stale() == []
    old = Matcher.build(entries, "tensorflow", {"keras": "3.2.0"}, witnesses)
    assert old.match(row(**WITNESS)) is None and old.stale() == []  # not applicable to that version at all


def test_a_scope_touched_by_inputs_that_were_never_witnesses_is_not_stale(tmp_path):
    """A user's own case in the cause's scope (same API, parameters and features) that conforms:
    nothing says the mechanism was triggered, so nothing is stale. The old rule (scope ran and
    explained nothing) called this 'the framework changed'."""
    entries = load_expectations(write(tmp_path, ENTRY), FRAMEWORKS)
    witnesses = witnesses_from([row(**WITNESS, known="keras-mean")])
    for given in (witnesses, NO_WITNESSES):
        matcher = Matcher.build(entries, "tensorflow", {"keras": "3.15.1"}, given)
        users = row(suite="user", case_sha256="1" * 64, case_id="mine", verdict="conforms", detail="", variants="")
        assert [e.id for e in matcher.scope(users)] == ["keras-mean"] and matcher.match(users) is None
        assert matcher.stale() == []
    # a witness of another golden file (the case changed) is not the same input either
    matcher = Matcher.build(entries, "tensorflow", {"keras": "3.15.1"}, witnesses)
    matcher.match(row(suite="default", case_sha256="2" * 64, verdict="conforms", detail="", variants=""))
    assert matcher.stale() == []


def test_witnesses_are_read_from_a_stored_run(tmp_path):
    from conformance.expectations import read_witnesses
    from conformance.suites import BASELINES_DIR
    found = read_witnesses(BASELINES_DIR / "default-cpu.parquet")
    assert "keras-probabilities-clipped" in found.causes("tensorflow")
    assert any(suite == "default" for suite, _ in found.cases("tensorflow", "keras-probabilities-clipped"))
    (tmp_path / "not.parquet").write_text("no")
    with pytest.raises(ExpectationsError, match="not.parquet"):
        read_witnesses(tmp_path / "not.parquet")


@pytest.mark.parametrize("text, field", [
    ("cause = []\n", None),
    ("", "cause"),
    ("[[knwon]]\nid = 'x'\n", "knwon"),
    (ENTRY.replace('frameworks = ["tensorflow"]', 'frameworks = ["pytorch"]'), "frameworks"),
    (ENTRY.replace('verdicts = ["variant"]', 'verdicts = ["varient"]'), "verdicts"),
    (ENTRY.replace('evidence = "https://github.com/keras-team/keras/issues/19740"', 'evidence = "a note somewhere"'), "evidence"),
    (ENTRY.replace('requires = ["keras>=3.3"]', 'requires = ["keras>>3"]'), "requires"),
    (ENTRY.replace('features = ["weight"]', 'features = "weight"'), "features"),
    (ENTRY.replace('features = ["weight"]', 'detail = 5'), "detail"),
    (ENTRY.replace('params = { target_kind = "index", reduction = "mean" }', 'params = { colour = "red" }'), "params"),
    (ENTRY + ENTRY, "id"),
    (ENTRY.replace('reason = "divides by the count"', ''), "reason"),
])
def test_malformed_files_are_refused_with_the_entry_and_field(tmp_path, text, field):
    path = write(tmp_path, text)
    if field is None:
        assert load_expectations(path, FRAMEWORKS) == []  # no expectations, said explicitly
        return
    with pytest.raises(ExpectationsError) as e:
        load_expectations(path, FRAMEWORKS)
    assert str(path) in str(e.value) and (repr(field) in str(e.value) or field in str(e.value))


def test_the_shipped_file_loads_and_cites_only_upstream_evidence():
    entries = load_expectations(DEFAULT_PATH, FRAMEWORKS)
    assert entries and len({e.id for e in entries}) == len(entries)
    assert all(link.startswith("https://") for e in entries for link in e.evidence)


def matrix_rows(verdict, known=""):
    return [dict(row(verdict=verdict, known=known, evidence="https://x", variants="mean_by_count" if known else "")),
            dict(row(verdict="conforms", output="grad", known=""))]


def test_matrix_check_fails_unexpected_and_xfails_known(tmp_path):
    failure = check(matrix_rows("inaccurate"), tmp_path)
    assert "1 unexpected divergence(s)" in failure and "expected:" in failure and "of the tolerance" in failure
    with pytest.raises(pytest.xfail.Exception, match="known: keras-mean"):
        check(matrix_rows("variant", known="keras-mean"), tmp_path)
    assert check([dict(row(verdict="conforms", known=""))], tmp_path) == ""  # nothing diverges: passes


@pytest.mark.parametrize("framework, versions, fields, cause", [
    # Keras casts a bfloat16 loss's labels to bfloat16: label 70001 scores another class
    ("tensorflow", {"keras": "3.15.1"}, dict(api="keras.losses.SparseCategoricalCrossentropy", dtype="bfloat16",
                                            verdict="inaccurate", features="labels_inexact,wide_rows"),
     "keras-labels-cast-to-loss-dtype"),
    # torch's CPU lane sum over a 131072-class row, float32
    ("torch", {"torch": "2.13.0"}, dict(api="torch.nn.functional.cross_entropy", dtype="float32",
                                        verdict="inaccurate", features="wide_rows,class_count_inexact"),
     "torch-cpu-lane-sum"),
    ("jax", {"jax": "0.10.2", "optax": "0.2.8"},
     dict(api="jax.nn.log_softmax", op="log_softmax", dtype="bfloat16", output="grad", verdict="inaccurate",
          features="class_count_inexact,wide_rows"), "jax-log-softmax-backward-bfloat16-cotangent-sum-stalls"),
])
def test_the_large_suites_causes_recognise_a_users_case_by_its_features(framework, versions, fields, cause):
    """No case globs: a user's own LLM head (any id) with the same mechanism gets the same cause."""
    matcher = Matcher.build(load_expectations(DEFAULT_PATH, FRAMEWORKS), framework, versions)
    found = matcher.match(row(**{**dict(framework=framework, case_id="my-llm-head", op="cross_entropy",
                                        params=json.dumps({"target_kind": "index", "reduction": "mean"}),
                                        device="cpu", output="loss", detail="", variants=""), **fields}))
    assert found is not None and found.id == cause
    # the same divergence on a row without the trigger is not given that cause
    narrow = {**fields, "features": "op:cross_entropy"}
    other = matcher.match(row(**{**dict(framework=framework, case_id="my-llm-head", op="cross_entropy",
                                        params=json.dumps({"target_kind": "index", "reduction": "mean"}),
                                        device="cpu", output="loss", detail="", variants=""), **narrow}))
    assert other is None or other.id != cause


def test_no_cause_is_keyed_by_case_names():
    assert all(e.cases == ("*",) for e in load_expectations(DEFAULT_PATH, FRAMEWORKS))


def test_plugins_named_in_the_file_may_be_named_where_they_are_not_installed(tmp_path):
    path = tmp_path / "e.toml"
    entry = ('[[cause]]\nid = "x"\nframeworks = ["onnxruntime"]\nverdicts = ["raised"]\nreason = "r"\n'
             'evidence = "https://example.org"\n')
    path.write_text(entry)
    with pytest.raises(ExpectationsError, match="unknown framework 'onnxruntime'"):
        load_expectations(path, ["torch"])
    path.write_text('plugins = ["onnxruntime"]\n' + entry)
    assert load_expectations(path, ["torch"])[0].frameworks == ("onnxruntime",)
    path.write_text('plugins = ["onnxruntime"]\n' + entry.replace('"onnxruntime"]', '"onnxruntim"]'))
    with pytest.raises(ExpectationsError, match="unknown framework 'onnxruntim'"):  # a typo is still an error
        load_expectations(path, ["torch"])
    path.write_text('plugins = "onnxruntime"\n' + entry)
    with pytest.raises(ExpectationsError, match="'plugins'"):
        load_expectations(path, ["torch"])
