"""Where the case definitions and the stored golden files are: the `cases/` folder at the top
of a checkout (an editable install runs from one too), or, when the package runs from a wheel,
the same files installed inside this package as `reference/_cases` (pyproject.toml maps that
package onto `cases/`, so the repository keeps one copy where its docs say)."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def checkout_root(package: Path = _PACKAGE) -> Path | None:
    """The checkout holding this package, or None when it is installed (no pyproject.toml and
    cases/ beside it)."""
    root = package.parent
    return root if (root / "pyproject.toml").is_file() and (root / "cases").is_dir() else None


CHECKOUT = checkout_root()
CASES_DIR = CHECKOUT / "cases" if CHECKOUT else _PACKAGE / "_cases"
