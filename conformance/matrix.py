"""The conformance matrix for pytest: one test per (framework, case).

A test fails on any divergence the expectations file does not name, and on an
expectation that no longer matches anything; it raises KnownDivergence when every
divergence is a known one, which the test marks as a strict xfail (raises=KnownDivergence),
so a framework that stops diverging turns it into a failure (XPASS strict).
"""
from __future__ import annotations

import importlib.util
from fnmatch import fnmatchcase
from pathlib import Path

from reference.golden import GoldenCase

from . import runner
from .expectations import Expectation
from .verdicts import CONFORMS, UNSUPPORTED

# the module whose presence makes a framework's adapter importable
REQUIRED_MODULES = {"torch": ("torch",), "tensorflow": ("tensorflow", "keras"), "jax": ("jax", "optax")}


class KnownDivergence(Exception):
    """Every divergence of this (framework, case) is declared in the expectations file."""


def missing_module(framework: str) -> str | None:
    """The first module the framework needs that is not installed, without importing it."""
    return next((m for m in REQUIRED_MODULES[framework] if importlib.util.find_spec(m) is None), None)


def expectations_for(expectations: list[Expectation], framework: str, case: GoldenCase) -> list[Expectation]:
    features = set(case.entry["features"])
    return [e for e in expectations if e.framework == framework
            and any(fnmatchcase(case.id, p) for p in e.cases) and set(e.features) <= features]


class MatrixRun:
    """Runs every installed framework over the suites once, side by side, on first use."""

    def __init__(self, suite_dirs: list[Path], out_dir: Path, expectations: list[Expectation]):
        self.suite_dirs, self.out_dir, self.expectations = suite_dirs, out_dir, expectations
        self._rows: dict[tuple[str, str], list[dict]] | None = None
        self.skipped: dict[str, str] = {}

    def rows(self, framework: str, case_id: str) -> list[dict]:
        if self._rows is None:
            installed = [f for f in runner.FRAMEWORKS if missing_module(f) is None]
            self._rows = {}
            for run in runner.run(self.suite_dirs, installed, out_dir=self.out_dir, expectations=self.expectations):
                if run.skipped:
                    self.skipped[run.framework] = run.skipped
                for row in run.rows:
                    self._rows.setdefault((row["framework"], row["case_id"]), []).append(row)
        if framework in self.skipped:
            raise RuntimeError(f"{framework} did not start: {self.skipped[framework]}")
        return self._rows.get((framework, case_id), [])


def _line(row: dict) -> str:
    return (f"{row['api']} {row['dtype']} {row['device']} {row['output']}: {row['verdict']} "
            f"({row['detail']})")


def check(rows: list[dict], expected: list[Expectation]) -> None:
    """Raise pytest's failure for anything unexpected; KnownDivergence if all is known."""
    import pytest

    diverging = [r for r in rows if r["verdict"] not in (CONFORMS, UNSUPPORTED)]
    unexpected = [r for r in diverging if not r["known"]]
    if unexpected:
        pytest.fail("unexpected divergence:\n" + "\n".join(_line(r) for r in unexpected), pytrace=False)
    used = {r["known"] for r in diverging}
    stale = [e.id for e in expected if e.id not in used]
    if stale and diverging:
        pytest.fail(f"expectations no longer met (the framework changed?): {', '.join(stale)}", pytrace=False)
    if diverging:
        raise KnownDivergence("\n".join(_line(r) for r in diverging))
