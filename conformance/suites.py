"""Where `xent` finds its suites and baselines, and where it writes the suites it generates.

From a checkout (an editable install included): `cases/` and `baselines/` at its top, and the
generated suites under `cases/golden/` (git-ignored), as the README says. From a wheel: the
default suite (definitions and golden files), the peer cases and the baselines are installed
with the package (pyproject.toml maps them in), and the suites that are generated, not shipped
(the large suite, 364 MB; the peer suite; `xent generate --cases` output), go to a user cache
directory: `XENT_CACHE`, else the platform's (`~/.cache/xent-conformance` on Linux).
"""
from __future__ import annotations

import os
from pathlib import Path

from reference.casefile import CaseSpec, load_case_files
from reference.catalog import default_specs
from reference.locations import CASES_DIR, CHECKOUT


def cache_dir(environ=os.environ) -> Path:
    """The user cache directory of an installed package: XENT_CACHE, else the platform's."""
    if environ.get("XENT_CACHE"):
        return Path(environ["XENT_CACHE"]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("xent-conformance", appauthor=False))


def generated_dir(checkout: Path | None = CHECKOUT, environ=os.environ) -> Path:
    """Where generated suites' golden folders go: a checkout keeps them beside the stored ones."""
    return checkout / "cases" / "golden" if checkout else cache_dir(environ) / "golden"


GENERATED_DIR = generated_dir()
BASELINES_DIR = CHECKOUT / "baselines" if CHECKOUT else Path(__file__).resolve().with_name("_baselines")
USER_GOLDEN_DIR = GENERATED_DIR / "user"  # `xent generate --cases` without --out
PEER_CASES = CASES_DIR / "peer" / "onnx_softmax_cross_entropy.toml"


def peer_specs() -> list[CaseSpec]:
    """The cases built from ONNX's backend tests (cases/peer/README.md)."""
    return load_case_files([PEER_CASES])


# suite name -> (its case definitions, its golden folder); only the default suite's golden files
# are stored; the others are written by `xent generate --suite NAME` (load_suite names that command)
SUITES = {"default": (default_specs, CASES_DIR / "golden" / "default"),
          "large": (None, GENERATED_DIR / "large"),
          "peer": (peer_specs, GENERATED_DIR / "peer")}


def results_path(path: str | Path) -> Path:
    """A run's results file: the file given, or results.parquet in the run folder given."""
    path = Path(path)
    return path / "results.parquet" if path.is_dir() else path
