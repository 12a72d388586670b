"""Shared paths: tests read the repository's files relative to this folder, never the
working directory, so `pytest` runs from anywhere."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
