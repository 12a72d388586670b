"""The conformance matrix for pytest: one test per (framework, case), one per expectation.

A (framework, case) test fails on any divergence the expectations file does not explain, and
is an expected failure (xfail, with the causes and their evidence) when every divergence is a
known one. An expectation's own test fails when its scope ran and it explained nothing
("expectation X no longer matches: the framework changed"); together with the baseline
diff, that is how a framework that changes behaviour shows.
"""
from __future__ import annotations

from pathlib import Path

from . import runner
from .adapters import FRAMEWORKS, missing_module
from .expectations import Expectation, stale_message
from .verdicts import CONFORMS, UNSUPPORTED


class MatrixRun:
    """Runs every installed framework over the suites once, side by side, on first use."""

    def __init__(self, suite_dirs: list[Path], out_dir: Path, expectations: list[Expectation]):
        self.suite_dirs, self.out_dir, self.expectations = suite_dirs, out_dir, expectations
        self._rows: dict[tuple[str, str], list[dict]] | None = None
        self.skipped: dict[str, str] = {}
        self.stale: set[str] = set()  # expectations whose scope ran and that explained nothing
        self.ran: set[str] = set()  # frameworks that ran

    def all_rows(self) -> list[dict]:
        self.ensure_run()
        return [r for rows in self._rows.values() for r in rows]

    def rows(self, framework: str, case_id: str) -> list[dict]:
        self.ensure_run()
        if framework in self.skipped:
            raise RuntimeError(f"{framework} did not start: {self.skipped[framework]}")
        return self._rows.get((framework, case_id), [])

    def ensure_run(self) -> None:
        if self._rows is None:
            installed = [f for f in FRAMEWORKS if missing_module(f) is None]
            self._rows = {}
            for run in runner.run(self.suite_dirs, installed, out_dir=self.out_dir, expectations=self.expectations):
                if run.skipped:
                    self.skipped[run.framework] = run.skipped
                else:
                    self.ran.add(run.framework)
                self.stale.update(run.stale)
                for row in run.rows:
                    self._rows.setdefault((row.framework, row.case_id), []).append(vars(row))


def _line(row: dict) -> str:
    return (f"{row['api']} {row['dtype']} {row['device']} {row['output']}: {row['verdict']} "
            f"({row['detail']})")


def check(rows: list[dict]) -> None:
    """pytest's failure for anything unexpected; an xfail naming the causes if all is known."""
    import pytest

    diverging = [r for r in rows if r["verdict"] not in (CONFORMS, UNSUPPORTED)]
    unexpected = [r for r in diverging if not r["known"]]
    if unexpected:
        pytest.fail("unexpected divergence:\n" + "\n".join(_line(r) for r in unexpected), pytrace=False)
    if diverging:
        causes = sorted({(r["known"], r["evidence"]) for r in diverging})
        pytest.xfail("known: " + "; ".join(f"{k} ({e})" for k, e in causes))


def check_expectation(entry: Expectation, matrix: "MatrixRun") -> None:
    import pytest

    matrix.ensure_run()
    if not set(entry.frameworks) & matrix.ran:
        pytest.skip(f"none of {', '.join(entry.frameworks)} ran")
    if entry.id in matrix.stale:
        pytest.fail(stale_message([entry.id]), pytrace=False)
