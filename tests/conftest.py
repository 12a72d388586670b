"""Shared paths: tests read the repository's files relative to this folder, never the
working directory, so `pytest` runs from anywhere."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def setuptools_hidden(tmp_path, monkeypatch) -> Path:
    """PYTHONPATH for processes started from now on holds a setuptools that fails to import, as
    in a uv environment of torch 2.9 or older: torch's compiler (torch.utils.cpp_extension)
    imports it, so compile cannot set up there while eager runs. Returns that folder."""
    folder = tmp_path / "setuptools-hidden"
    (folder / "setuptools").mkdir(parents=True)
    (folder / "setuptools" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'setuptools'\", name='setuptools')\n")
    monkeypatch.setenv("PYTHONPATH", str(folder))
    return folder
