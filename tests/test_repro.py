"""Reproducers: written for every diverging task, they run as they are where their framework is
installed and print the framework's answer, bit for bit what the run observed, beside the
reference's."""
import subprocess
import sys

import numpy as np
import pytest

from conformance import repro, report, runner
from conformance.adapters import FRAMEWORKS, missing_module
from conformance.expectations import load_expectations
from conformance.results import observed_from_columns
from conformance.suites import SUITES
from conformance.verdicts import CONFORMS, UNSUPPORTED
from reference.formats import FORMATS, to_float64

# default-suite cases on which each framework diverges in several ways: NaN from inf - inf,
# torch's ignored-row gradient, an out-of-range label optax accepts, Keras' probability clipping
SAMPLE = {"ls-one-class", "ce-ignored-row-all-neg-inf", "cat-ce-out-of-range-neg1-none", "cat-cefp-below-one-soft",
          "cat-bcel-pos-inf"}


SEPARATOR = "\n=== next reproducer ===\n"
# each file as `python FILE` runs it (runpy, __name__ == "__main__"), in a fresh namespace
RUN_EACH = f"""
import runpy, sys
for path in sys.argv[1:]:
    print({SEPARATOR!r}, end="", flush=True)
    runpy.run_path(path, run_name="__main__")
    sys.stdout.flush()
"""


def _hex(bits: np.ndarray, dtype: str) -> list[str]:
    return [float(v).hex() if np.isfinite(v) else repr(float(v)) for v in to_float64(bits, FORMATS[dtype]).reshape(-1)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro")
    installed = [f for f in FRAMEWORKS if missing_module(f) is None]
    runs = runner.run([SUITES["default"][1]], installed, out_dir=out, expectations=load_expectations(),
                      case_ids=SAMPLE)
    df = report.results_frame([row for r in runs for row in r.rows])
    repro.write_files(df, out)
    return out, df


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_sample_of_reproducers_runs_and_prints_what_the_run_observed(run, framework):
    if missing_module(framework):
        pytest.skip(f"{framework} is not installed")
    out, df = run
    diverging = df[(df["framework"] == framework) & ~df["verdict"].isin([CONFORMS, UNSUPPORTED])]
    assert not diverging.empty and (diverging["reproducer"] != "").all()
    tasks = diverging.drop_duplicates("reproducer")
    # one task per case, at most three, each script run as __main__ from its file, all three in
    # one interpreter (the framework imported once: TensorFlow's import is most of a script's time)
    chosen = [task for _, task in tasks.drop_duplicates("case_id").head(3).iterrows()]
    paths = [out / repro.file_name(task) for task in chosen]
    done = subprocess.run([sys.executable, "-c", RUN_EACH, *map(str, paths)], capture_output=True, text=True,
                          timeout=240, cwd=out)
    assert done.returncode == 0, done.stderr[-2000:]
    outputs = done.stdout.split(SEPARATOR)[1:]
    assert len(outputs) == len(chosen), done.stdout[-2000:]
    for task, path, text in zip(chosen, paths, outputs):
        assert path.read_text() == task["reproducer"]
        assert "this run:" in text and "recorded by the conformance run:" in text
        rows = df[(df["framework"] == framework) & (df["reproducer"] == task["reproducer"])]
        for _, row in rows.iterrows():
            observed = observed_from_columns(row)
            section = text.split(f"{row['output']}:\n", 1)[1]
            if observed.status == "ok":  # the framework's values, bit for bit as the run saw them
                for value in _hex(observed.bits, observed.dtype)[:24]:
                    assert f"({value})" in section or value in section, (path, row["output"], value)
            elif observed.status == UNSUPPORTED:  # a loss-only API's gradient: it computes none
                assert "returned no value" in section
            else:
                assert "raised" in section
            this_run = text.rsplit("this run:", 1)[1]
            if row["verdict"] not in (CONFORMS, UNSUPPORTED, "inaccurate") and observed.status == "ok" \
                    and row["expected_kind"] != "error":
                assert f"{row['output']}: identical bits" not in this_run  # the divergence shows


def test_a_reproducer_is_valid_python_whatever_its_texts_hold(tmp_path):
    """Details and reasons end up in the docstring: quotes and backslashes must not break it."""
    from reference.golden import load_suite

    from conformance.adapters.base import Api
    from conformance.results import ResultRow

    case = next(c for c in load_suite(SUITES["default"][1]) if c.id == "ls-one-class")
    from conformance.protocol import Recipe

    recipe = Recipe("def tensor(b, d, s): return None\ndef integers(v, d, s): return None\n"
                    "def bits_of(t): return None\n", "loss = {call}\ngrad = None\n", "x", "")
    blank = {f: "" for f in ResultRow.__dataclass_fields__ if f not in ("max_ulp", "max_abs_err", "max_tol_ratio",
                                                                        "median_ulp", "observed_bits")}
    row = ResultRow(**{**blank, "output": "loss", "verdict": "variant", "detail": 'a """ quote \\ and a \\n',
                       "known": "k", "known_reason": "reason with \"\"\" too", "framework": "f", "api": "a",
                       "max_ulp": 0.0, "max_abs_err": 0.0, "max_tol_ratio": 0.0, "median_ulp": 0.0,
                       "observed_bits": b""})
    text, data = repro.script(recipe, Api("a", "log_softmax", "x"), case, case.arrays(), "float32", "cpu", [row])
    compile(text, "repro.py", "exec")
    assert data == {}  # a small case: every value inline


@pytest.mark.slow
@pytest.mark.skipif(missing_module("torch") is not None, reason="torch is not installed")
def test_a_large_case_gets_a_reproducer_with_its_arrays_beside_it(tmp_path):
    """Above MAX_ELEMENTS input elements the arrays go to a data file named in the script; the
    script runs from its folder, and a report written elsewhere takes the data file along."""
    from reference.casefile import load_case_files
    from reference.golden import generate

    x = np.random.default_rng(3).standard_normal((2, repro.MAX_ELEMENTS // 2 + 8))
    x[1, 7] = np.inf  # torch's row-max shift: a NaN row where the limits are finite
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "big.toml").write_text('[[case]]\nid = "big-inf"\nop = "log_softmax"\ndtypes = ["float32"]\n'
                                      'input = { npy = "x.npy" }\n')
    golden = generate(load_case_files([tmp_path / "big.toml"]), tmp_path / "golden" / "user", "user").parent
    out = tmp_path / "run"
    (found,) = runner.run([golden], ["torch"], out_dir=out, expectations=load_expectations())
    df = report.results_frame(found.rows)
    diverging = df[~df["verdict"].isin([CONFORMS, UNSUPPORTED])]
    assert not diverging.empty and (diverging["reproducer"] != "").all()
    assert repro.write_files(df, out) == diverging.drop_duplicates("reproducer").shape[0]
    task = diverging.iloc[0]
    script = out / repro.file_name(task)
    name = repro.DATA_LINE.search(task["reproducer"]).group(1)
    assert (script.parent / name).exists() and len(task["reproducer"]) < 20_000
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "this run:" in done.stdout and "identical bits" not in done.stdout.rsplit("this run:", 1)[1]
    # scripts written into another folder (xent report RUN --out ELSEWHERE) take their data along
    elsewhere = tmp_path / "elsewhere"
    assert repro.write_files(df, elsewhere, source=out) == repro.write_files(df, out)
    assert (elsewhere / repro.file_name(task)).with_name(name).exists()
    # without the data file anywhere, no script: it could not run
    assert repro.write_files(df, tmp_path / "nowhere") == 0 and not (tmp_path / "nowhere").exists()
