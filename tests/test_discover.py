"""xent discover: what it draws (valid, exact cases of every op), how it shrinks, how it checks
relations, and (slow) a whole search against a real framework whose written cases replay."""
import json
import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from .conftest import ROOT
from conformance.discover.relations import RELATIONS, _bits, violated
from conformance.discover.shrink import candidates, complexity, shrink, simpler_values
from conformance.discover.strategies import Example, examples, in_dtype
from reference.casefile import load_case_file, same_case, write_case_file
from reference.ops import OPS


@pytest.mark.parametrize("op", sorted(OPS))
def test_examples_are_valid_exact_cases(op, tmp_path_factory):
    """Every drawn example is a case the loader accepts, exact in its dtype, and the package's
    writer round-trips it."""
    folder = tmp_path_factory.mktemp(op)

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(examples(op, ("float32", "bfloat16")))
    def check(example):
        spec = example.spec("drawn")
        finite = example.input[np.isfinite(example.input)]
        assert np.array_equal(in_dtype(finite, example.dtype), finite)
        (back,) = load_case_file(write_case_file([spec], folder / "one.toml"))
        assert same_case(spec, back)

    check()


def test_in_dtype_rounds_to_the_dtype():
    assert in_dtype([1 + 2.0 ** -10], "bfloat16")[0] == 1.0  # 7 fraction bits
    assert in_dtype([1 + 2.0 ** -7], "bfloat16")[0] == 1 + 2.0 ** -7
    assert in_dtype([1 + 2.0 ** -30], "float32")[0] == 1.0
    assert in_dtype([3.5e38], "bfloat16")[0] == math.inf


def test_simpler_values_are_simpler_and_exact():
    for v, dtype in ((3.140625, "bfloat16"), (-1234.5678, "float32"), (2.0 ** -130, "float32")):
        out = simpler_values(v, dtype, "logits")
        assert out and all(complexity(u) < complexity(v) for u in out)
        assert np.array_equal(in_dtype(out, dtype), out)
    assert simpler_values(0.0, "float32", "logits") == []
    assert all(0 <= u <= 1 for u in simpler_values(0.3, "float32", "probs"))


def _example(x, target, **kw):
    return Example("cross_entropy", "float32", "ordinary", np.array(x, dtype=np.float64),
                   np.array(target, dtype=np.int64), "index", **kw)


def test_shrink_keeps_the_property_and_minimises():
    """A NaN logit in a counted row: shrinks to one row of the fewest classes, every other value 0."""
    big = _example([[1.5, 2.25, math.nan], [0.75, -3.0, 4.0], [1.0, 1.0, 2.0]], [0, 2, 1],
                   weight=np.array([0.5, 2.0, 3.0]), reduction="none")

    def holds(e):  # a NaN in a row whose label is counted
        return bool(np.isnan(e.input).any())

    small, tries, finished = shrink(big, holds, lambda: False)
    assert finished and holds(small)
    assert small.input.shape == (1, 1) or small.input.shape == (1, 2)
    assert small.weight is None
    finite = small.input[np.isfinite(small.input)]
    assert (finite == 0).all()
    # every candidate of the shrunk example breaks the property, or is not simpler
    assert not any(holds(c) for c in candidates(small))


def test_shrink_drops_classes_with_their_labels():
    e = _example([[1.0, 2.0, 3.0]], [2])
    dropped = [c for c in candidates(e) if c.input.shape == (1, 2)]
    assert {tuple(c.target.tolist()) for c in dropped} == {(1,)}  # class 2 is the label: it stays
    assert all(c.spec("ok") for c in dropped)


def test_shrink_stops_on_the_budget():
    e = _example([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [0, 1])
    small, tries, finished = shrink(e, lambda c: True, lambda: True)
    assert small is e and tries == 0 and not finished


def test_relations_transform_rows_together():
    e = _example([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [0, 1, -100], reduction="none")
    alone, reverse = (r.transform(e) for r in RELATIONS)
    assert alone.input.tolist() == [[1.0, 2.0]] and alone.target.tolist() == [0]
    assert reverse.input.tolist() == [[5.0, 6.0], [3.0, 4.0], [1.0, 2.0]]
    assert reverse.target.tolist() == [-100, 1, 0]
    assert all(r.applies(e) for r in RELATIONS)
    assert not any(r.applies(replace(e, reduction="mean")) for r in RELATIONS)


@pytest.mark.slow
def test_relation_check_on_real_rows(tmp_path):
    """torch's per-row losses satisfy both relations on an ordinary batch; one bit flipped in one
    row's loss is a violation named by relation, API, output and the row."""
    pytest.importorskip("torch")
    from conformance.discover.search import Probe
    probe = Probe("torch", tmp_path, [])
    try:
        probe.hello()
        e = _example([[1.0, 2.0, 0.5], [3.0, -4.0, 0.25]], [0, 2], reduction="none")
        mine = probe.rows(e, apis={"torch.nn.functional.cross_entropy"})
        for relation in RELATIONS:
            theirs = probe.rows(relation.transform(e), apis={"torch.nn.functional.cross_entropy"})
            assert violated(relation, mine, theirs, e) == []
            loss = next(r for r in theirs if r.output == "loss")
            bits = _bits(loss).copy()
            bits[0] ^= 1
            tampered = [replace(r, observed_bits=bits.tobytes()) if r is loss else r for r in theirs]
            (found, detail), = violated(relation, mine, tampered, e)
            assert found["variants"] == relation.name and found["output"] == "loss" and "differ" in detail
    finally:
        probe.close()


@pytest.mark.slow
def test_discover_writes_cases_that_replay(tmp_path):
    """A short repeatable search against torch: findings by signature, one case each, and the
    written file, run as `xent run --cases` runs it, gives every finding's verdict again."""
    pytest.importorskip("torch")
    out = tmp_path / "d"
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "discover", "--frameworks", "torch",
                           "--modes", "eager", "--ops", "nll_loss,log_softmax", "--examples", "25", "--seed", "3",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "findings.json").read_text())
    assert not data["partial"] and data["findings"]
    written = [f for f in data["findings"] if f["case_id"]]
    assert written, "the search found nothing beyond the catalog"
    specs = {s.id: s for s in load_case_file(out / "discovered.toml")}
    assert {f["case_id"] for f in written} <= set(specs)
    for f in written:
        assert f["proof"]["replay_1_thread"] == "reproduced" and f["proof"]["replay_2_threads"] == "reproduced", f
        assert f["proof"]["reference_paths"] in ("exact path only", "fast and exact agree")
    # the file as a user runs it
    run = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--cases", str(out / "discovered.toml"),
                          "--frameworks", "torch", "--out", str(tmp_path / "run")], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode in (0, 1), run.stderr[-3000:]
    import pandas as pd
    rows = pd.read_parquet(tmp_path / "run" / "results.parquet")
    for f in (f for f in written if f["kind"] == "finding"):
        row = rows[(rows.case_id == f["case_id"]) & (rows.api == f["api"]) & (rows.output == f["output"])]
        assert list(row.verdict) == [f["verdict"]], f
    assert (out / "findings.md").read_text().startswith("# xent discover")
