"""The default suite: the hand-written cases of cases/default.toml and the systematic
catalog, which is the union of every op's crosses of the levels in reference/levels.py."""
from __future__ import annotations

from .casefile import CaseSpec, load_case_files, parse_cases
from .locations import CASES_DIR
from .ops import OPS

HAND_WRITTEN = CASES_DIR / "default.toml"


def catalog_tables() -> list[dict]:
    return [table for op in OPS.values() for table in op.catalog()]


def default_specs() -> list[CaseSpec]:
    """The default suite: the hand-written cases and the systematic catalog."""
    return load_case_files([HAND_WRITTEN]) + parse_cases(catalog_tables(), "catalog")
