"""The conformance matrix for pytest: one test per (framework, case).

A test fails on any divergence the expectations file does not name, and on an
expectation whose scope ran and that explained nothing; it raises KnownDivergence when
every divergence is a known one, which the test marks as a strict xfail
(raises=KnownDivergence), so a framework that stops diverging fails the test.
"""
from __future__ import annotations

from pathlib import Path

from reference.golden import GoldenCase

from . import runner
from .adapters import FRAMEWORKS, missing_module
from .expectations import Expectation, stale_message
from .verdicts import CONFORMS, UNSUPPORTED


class KnownDivergence(Exception):
    """Every divergence of this (framework, case) is declared in the expectations file."""


def expectations_for(expectations: list[Expectation], framework: str, case: GoldenCase) -> list[Expectation]:
    """The entries whose scope includes this case (before anything has run)."""
    return [e for e in expectations if e.covers_case(framework, case.op, case.id, case.entry["features"], case.params)]


class MatrixRun:
    """Runs every installed framework over the suites once, side by side, on first use."""

    def __init__(self, suite_dirs: list[Path], out_dir: Path, expectations: list[Expectation]):
        self.suite_dirs, self.out_dir, self.expectations = suite_dirs, out_dir, expectations
        self._rows: dict[tuple[str, str], list[dict]] | None = None
        self.skipped: dict[str, str] = {}

    def all_rows(self) -> list[dict]:
        self.rows(FRAMEWORKS[0], "")
        return [r for rows in self._rows.values() for r in rows]

    def rows(self, framework: str, case_id: str) -> list[dict]:
        if self._rows is None:
            installed = [f for f in FRAMEWORKS if missing_module(f) is None]
            self._rows = {}
            for run in runner.run(self.suite_dirs, installed, out_dir=self.out_dir, expectations=self.expectations):
                if run.skipped:
                    self.skipped[run.framework] = run.skipped
                for row in run.rows:
                    self._rows.setdefault((row.framework, row.case_id), []).append(vars(row))
        if framework in self.skipped and case_id:
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
    measured = [r for r in rows if r["verdict"] not in (UNSUPPORTED, "crashed")]
    stale = [e.id for e in expected if e.id not in used and any(e.covers(r) for r in measured)]
    if stale:
        pytest.fail(stale_message(stale), pytrace=False)
    if diverging:
        raise KnownDivergence("\n".join(_line(r) for r in diverging))
