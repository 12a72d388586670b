"""Malformed input gets one clear error naming the file, the case (or the entry) and the field:
never a traceback, never a hang, nothing written. The corpus is tests/corpus/ (make_corpus.py)."""
import subprocess
import sys
import time

import pytest

from conformance.adapters import FRAMEWORKS
from conformance.expectations import ExpectationsError, load_expectations
from reference.casefile import CaseFileError, load_case_file, parse_cases
from reference.formats import POS_INF

from .conftest import ROOT

CORPUS = ROOT / "tests" / "corpus"
CASE_FILES = sorted((CORPUS / "cases").glob("*.toml"))
EXPECTATION_FILES = sorted((CORPUS / "expectations").glob("*.toml"))


def test_the_corpus_is_large_enough():
    assert len(CASE_FILES) >= 100 and len(EXPECTATION_FILES) >= 20


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_a_malformed_case_file_gets_one_clear_error(path):
    start = time.perf_counter()
    with pytest.raises(CaseFileError) as caught:
        load_case_file(path)
    assert time.perf_counter() - start < 1.0
    message = str(caught.value)
    assert message.startswith(str(path)) and ("case " in message or ": file:" in message) and "field " in message
    assert "\n" not in message.strip() and len(message) < 1000


@pytest.mark.parametrize("path", EXPECTATION_FILES, ids=[p.stem for p in EXPECTATION_FILES])
def test_a_malformed_expectations_file_gets_one_clear_error(path):
    with pytest.raises(ExpectationsError) as caught:
        load_expectations(path, FRAMEWORKS)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message.strip()


@pytest.mark.parametrize("name", ["id-newline", "integer-5000-digits", "invalid-utf8", "input-deep", "target-20-digits"])
def test_the_command_line_exits_2_with_one_line_and_writes_nothing(tmp_path, name):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--cases", str(CORPUS / "cases" / f"{name}.toml"),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert not out.exists()


def test_values_beyond_every_format_are_decided_at_once():
    start = time.perf_counter()
    (spec,) = parse_cases([{"id": "big", "op": "log_softmax", "input": ["1e999999999", "0x1p-99999999999", "1.0"]}],
                          "test")
    assert time.perf_counter() - start < 1.0
    assert spec.input[0] == POS_INF and spec.input[1] == 0


def test_bad_results_files_and_manifests_get_one_clear_error(tmp_path):
    import pandas as pd

    from conformance import report
    from reference.golden import GoldenFileError, load_suite

    (tmp_path / "notparquet.parquet").write_text("hello")
    for path, words in ((tmp_path / "missing.parquet", "no such results file"),
                        (tmp_path / "notparquet.parquet", "not a results file")):
        with pytest.raises(ValueError, match=words):
            report.read_results(path)
    good = pd.read_parquet(ROOT / "baselines" / "default-cpu.parquet").head(3)
    good.loc[0, "verdict"] = "splendid"
    good.to_parquet(tmp_path / "odd.parquet")
    with pytest.raises(ValueError, match="unknown verdict 'splendid'"):
        report.read_results(tmp_path / "odd.parquet")
    (tmp_path / "manifest.json").write_text('{"generator_version": "1"}')
    with pytest.raises(GoldenFileError, match="field 'cases'"):
        load_suite(tmp_path)
