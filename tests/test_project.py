"""House rules that keep the project usable: the Quick start, CI, and the one-way imports."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_blocks():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```[a-z]*\n(.*?)```", section, re.S)]


def test_quick_start_has_exactly_the_two_commands():
    run, test = quick_start_blocks()
    assert "\n" not in run and "\n" not in test
    assert run.endswith("xent run") and test.endswith("pytest -n auto")
    assert "-c constraints.txt" in run and "[all]" in run and "[all,test]" in test


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "## Quick start" in ci and 'bash -c "$cmd"' in ci


def test_reference_imports_no_framework_pandas_or_conformance():
    banned = re.compile(r"^\s*(import|from)\s+(torch|tensorflow|jax|optax|keras|pandas|conformance)\b", re.M)
    for path in (ROOT / "reference").glob("*.py"):
        assert not banned.search(path.read_text()), path


def test_frameworks_are_imported_only_by_their_adapters():
    banned = re.compile(r"^\s*(import|from)\s+(torch|tensorflow|jax|optax|keras)\b", re.M)
    for path in (ROOT / "conformance").rglob("*.py"):
        if path.parent.name != "adapters" or path.name == "base.py":
            assert not banned.search(path.read_text()), path
