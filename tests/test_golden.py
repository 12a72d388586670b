"""Golden files: deterministic, in sync with the catalog, loadable without pickle."""
import json

import numpy as np
import pytest

from .conftest import ROOT
from reference.casefile import load_case_files
from reference.catalog import default_specs
from reference.golden import GoldenFileError, generate, load_suite, npz_bytes

DEFAULT = ROOT / "cases" / "golden" / "default"


@pytest.mark.slow
def test_regeneration_is_byte_identical_to_the_committed_suite(tmp_path):
    generate(default_specs(), tmp_path, "default")
    committed = sorted(p.name for p in DEFAULT.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (DEFAULT / name).read_bytes(), f"{name}: run `xent generate`"


def test_npz_bytes_is_deterministic_and_loads_without_pickle(tmp_path):
    arrays = {"b": np.arange(3, dtype=np.uint16), "a": np.array(5, dtype=np.int64)}
    assert npz_bytes(arrays) == npz_bytes(dict(reversed(arrays.items())))
    (tmp_path / "x.npz").write_bytes(npz_bytes(arrays))
    with np.load(tmp_path / "x.npz", allow_pickle=False) as npz:
        assert npz["a"].shape == () and npz["b"].tolist() == [0, 1, 2]


def test_manifest_records_hashes_versions_and_precision():
    manifest = json.loads((DEFAULT / "manifest.json").read_text())
    assert manifest["generator_version"] and manifest["working_precision_bits"]["start"] >= 64
    case = next(c for c in manifest["cases"] if c["id"] == "ce-mean")
    assert len(case["sha256"]) == 64 and set(case["precision_bits"]) == {"float64", "float32", "float16", "bfloat16"}
    errors = [c["id"] for c in manifest["cases"] if c["expect_error"]]
    assert {"ce-target-out-of-range", "ce-target-negative"} <= set(errors)


def test_every_scope_item_is_covered():
    features = set()
    for case in load_suite(DEFAULT):
        assert not any("," in f for f in case.entry["features"])  # the results file joins them with ','
        features |= set(case.entry["features"])
    for needed in ["op:log_softmax", "op:cross_entropy", "target:index", "target:probs", "weight", "ignore_index",
                   "all_ignored", "label_smoothing", "reduction:none", "reduction:mean", "reduction:sum",
                   "shape:unbatched", "shape:NxC", "shape:NxCxd...", "value:+inf", "value:-inf", "value:nan",
                   "value:max", "value:min_subnormal", "domain_error", "empty", "one_class"]:
        assert needed in features, needed


def test_corrupt_golden_file_is_refused(tmp_path):
    generate(load_case_files([ROOT / "cases" / "default.toml"])[:1], tmp_path, "t")
    (case,) = load_suite(tmp_path)
    case.path.write_bytes(case.path.read_bytes() + b"x")
    with pytest.raises(GoldenFileError, match="sha256"):
        case.arrays()


def test_missing_manifest_is_refused(tmp_path):
    with pytest.raises(GoldenFileError, match="manifest"):
        load_suite(tmp_path)


def test_generate_deletes_only_what_its_manifest_listed(tmp_path):
    specs = load_case_files([ROOT / "cases" / "default.toml"])[:2]
    (tmp_path / "mine.npz").write_bytes(b"somebody else's file")
    with pytest.raises(GoldenFileError, match="does not list"):
        generate(specs, tmp_path, "t")
    generate(specs, tmp_path, "t", force=True)
    assert (tmp_path / "mine.npz").exists() and (tmp_path / f"{specs[0].id}.npz").exists()
    generate(specs[1:], tmp_path, "t", force=True)  # a case that is gone: its file goes, nothing else
    assert not (tmp_path / f"{specs[0].id}.npz").exists() and (tmp_path / "mine.npz").exists()


@pytest.mark.parametrize("op, reduction", [("log_softmax", "none"), ("cross_entropy", "none"),
                                           ("cross_entropy", "mean"), ("cross_entropy", "sum")])
def test_stored_arrays_take_the_fast_path_and_agree_with_the_exact_path(tmp_path, op, reduction, monkeypatch):
    from dataclasses import replace

    from reference import golden
    from reference.golden import _exact_values, _fast_path_applies, build_case
    rng = np.random.default_rng(7)
    np.save(tmp_path / "x.npy", (rng.standard_normal((5, 9)) * 4).astype(np.float32))
    np.save(tmp_path / "t.npy", rng.integers(0, 9, 5))
    target = '\ntarget = { npy = "t.npy" }' if op == "cross_entropy" else ""
    red = f'\nreduction = "{reduction}"' if op == "cross_entropy" else ""
    (tmp_path / "c.toml").write_text(f'[[case]]\nid = "s"\nop = "{op}"\ninput = {{ npy = "x.npy" }}{target}{red}\n')
    (spec,) = load_case_files([tmp_path / "c.toml"])
    assert _fast_path_applies(spec)
    fast_arrays, fast_entry = build_case(spec)
    written = replace(spec, input=_exact_values(spec.input))
    monkeypatch.setattr(golden, "FAST_PATH_MIN_ELEMENTS", 10**9)  # the written twin on the exact path
    assert not _fast_path_applies(written)
    exact_arrays, exact_entry = build_case(written)
    assert fast_entry["features"] == exact_entry["features"] and exact_entry["variants"] == {}
    for name, value in exact_arrays.items():
        assert np.array_equal(fast_arrays[name], value), name


def test_written_cases_from_the_threshold_on_take_the_fast_path_with_the_same_bits(monkeypatch):
    from reference import golden
    from reference.casefile import parse_cases
    rng = np.random.default_rng(3)
    rows = [[f"{v:.6g}" for v in rng.standard_normal(7) * 5] for _ in range(3)]
    (spec,) = parse_cases([{"id": "w", "op": "cross_entropy", "input": rows, "target": [6, 0, 3]}], "t")
    monkeypatch.setattr(golden, "FAST_PATH_MIN_ELEMENTS", 10**9)
    assert not golden._fast_path_applies(spec)
    exact_arrays, _ = golden.build_case(spec)
    monkeypatch.setattr(golden, "FAST_PATH_MIN_ELEMENTS", 1)
    assert golden._fast_path_applies(spec)
    fast_arrays, entry = golden.build_case(spec)
    assert entry["variants"] == {} and set(fast_arrays) == set(exact_arrays)
    assert all(np.array_equal(fast_arrays[k], v) for k, v in exact_arrays.items())
