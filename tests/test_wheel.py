"""The package outside a checkout: what pyproject.toml ships, and a wheel built from this tree,
installed into a fresh virtual environment, running `xent run` and the pytest plugin from a
folder that is not the checkout, with its suites found in the package data and its generated
ones in the user cache (XENT_CACHE)."""
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from conformance import suites
from reference import locations

from .conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
CASE = "ls-ordinary"  # one hand-written case of the default suite


def _package_folder(name: str) -> Path:
    mapped = PYPROJECT.get("package-dir", {}).get(name)
    return ROOT / mapped if mapped else ROOT / name.replace(".", "/")


def _ships(package: str, relative: str) -> bool:
    return any(fnmatch.fnmatch(relative, glob) for glob in PYPROJECT["package-data"].get(package, []))


def test_every_package_is_listed():
    """The packages are listed by hand (mapping cases/ and baselines/ in needs that): a new
    subpackage must join the list, or the wheel lacks it."""
    found = {".".join(p.parent.relative_to(ROOT).parts) for top in ("reference", "conformance")
             for p in (ROOT / top).rglob("__init__.py")}
    assert found <= set(PYPROJECT["packages"]), sorted(found - set(PYPROJECT["packages"]))


def test_every_data_file_of_a_code_package_ships():
    """Templates, the expectations file: whatever a package reads beside its modules."""
    code = [p for p in PYPROJECT["packages"] if p not in PYPROJECT.get("package-dir", {})]
    for package in code:
        folder = _package_folder(package)
        subpackages = {_package_folder(p) for p in code if p.startswith(package + ".")}
        for path in folder.rglob("*"):
            if (path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts
                    or any(sub in path.parents for sub in subpackages)):
                continue
            assert _ships(package, path.relative_to(folder).as_posix()), f"{path} is not package data"


def test_the_stored_suites_and_baselines_ship():
    """The default suite's definitions and every golden file its manifest lists, the peer cases
    and the baselines, through the package-dir mapping onto the checkout's folders."""
    assert _package_folder("reference._cases") == locations.CASES_DIR == ROOT / "cases"
    manifest = json.loads((ROOT / "cases" / "golden" / "default" / "manifest.json").read_text())
    needed = ["default.toml", "golden/default/manifest.json", "peer/onnx_softmax_cross_entropy.toml"]
    needed += [f"golden/default/{e['file']}" for e in manifest["cases"]]
    assert [f for f in needed if not _ships("reference._cases", f)] == []
    assert not _ships("reference._cases", "golden/large/large-ls-sharp-32768.npz")  # generated, 364 MB
    assert _package_folder("conformance._baselines") == suites.BASELINES_DIR == ROOT / "baselines"
    for path in suites.BASELINES_DIR.glob("*.parquet"):
        assert _ships("conformance._baselines", path.name)


def test_generated_suites_go_to_the_checkout_or_the_user_cache(tmp_path):
    assert locations.checkout_root() == ROOT
    assert locations.checkout_root(tmp_path / "site-packages" / "reference") is None
    assert suites.generated_dir(ROOT, {"XENT_CACHE": str(tmp_path)}) == ROOT / "cases" / "golden"
    assert suites.generated_dir(None, {"XENT_CACHE": str(tmp_path)}) == tmp_path / "golden"
    assert suites.generated_dir(None, {}).name == "golden"  # the platform's cache directory
    assert suites.SUITES["default"][1] == ROOT / "cases" / "golden" / "default"
    assert suites.SUITES["large"][1] == ROOT / "cases" / "golden" / "large"


def _tree(dest: Path) -> Path:
    """The files a fresh clone with this working tree's changes holds (tracked and untracked, not
    ignored): a wheel built here never sees a stale build/ folder or the git-ignored suites."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def _find_links() -> list[str]:
    """pip's configured find-links (this machine keeps torch's CPU wheel there): uv reads no pip
    configuration, and without them it would fetch torch's CUDA build."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    links = {v for line in listed.splitlines() if ".find-links=" in line
             for v in line.split("=", 1)[1].strip("'\"").split()}
    return [a for link in sorted(links) for a in ("--find-links", link)]


def _uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    import uv  # a dependency of the package (xent env create); it ships its binary

    return uv.find_uv_bin()


def built_wheel(tmp_path: Path) -> tuple[Path, Path]:
    """The files a clone holds (`_tree`) and the wheel built from them."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout to know which files a clone holds")
    source = _tree(tmp_path / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(source)], check=True)
    (wheel,) = (tmp_path / "dist").glob("xent_conformance-*.whl")
    return source, wheel


@pytest.mark.slow
def test_a_wheel_runs_outside_the_checkout(tmp_path):
    _, wheel = built_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("reference/_cases/golden/default/manifest.json"))
    assert {f"reference/_cases/golden/default/{e['file']}" for e in manifest["cases"]} <= names
    assert {"reference/_cases/default.toml", "conformance/_baselines/default-cpu.parquet",
            "conformance/expectations.toml"} <= names
    assert not [n for n in names if "/golden/large/" in n or "/golden/user/" in n]

    # a fresh environment (no system site-packages), with uv: pip would take minutes to unpack torch
    venv = tmp_path / "venv"
    subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([_uv(), "pip", "install", "--python", str(venv / "bin" / "python"), *_find_links(),
                    "-c", str(ROOT / "constraints.txt"), str(wheel), "torch", "pytest"], check=True)

    elsewhere, cache = tmp_path / "elsewhere", tmp_path / "cache"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("PYTEST_")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", XENT_CACHE=str(cache))

    def run(*args):
        return subprocess.run(args, cwd=elsewhere, env=env, capture_output=True, text=True)

    where = run("python", "-c", "import conformance, reference; print(conformance.__file__); print(reference.__file__)")
    assert where.returncode == 0, where.stderr
    for path in where.stdout.split():
        assert Path(path).is_relative_to(venv), f"imported from outside the environment: {path}"
    version = run("xent", "--version")
    assert version.returncode == 0 and version.stdout.startswith("xent-conformance "), version.stderr

    done = run("xent", "run", "--frameworks", "torch", "--out", "run")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert (elsewhere / "run" / "results.parquet").is_file() and (elsewhere / "run" / "report.html").is_file()

    missing = run("xent", "run", "--suite", "large", "--frameworks", "torch", "--out", "large")
    assert missing.returncode == 2 and "xent generate --suite large" in missing.stderr, missing.stderr
    assert str(cache / "golden" / "large") in missing.stderr  # generated suites go to the user cache

    tested = run("pytest", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "basetemp"),
                 "--xent-frameworks", "torch", "-k", f"torch-{CASE}")
    assert tested.returncode == 0, tested.stdout[-4000:] + tested.stderr[-2000:]
    assert re.search(r"= 1 (passed|xfailed), \d+ deselected in ", tested.stdout), tested.stdout[-2000:]
