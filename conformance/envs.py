"""Runtimes: interpreters a framework's worker can run under, and the cached virtual
environments `xent env create` makes for them with uv.

A runtime is a stable name and a Python interpreter. `local` is the interpreter running
xent; `NAME=PYTHON` names any other; a bare NAME is an environment made by `xent env create`
(kept under XENT_ENV_DIR, default envs/ in the user cache: conformance.suites.cache_dir,
~/.cache/xent-conformance/envs on Linux, moved by XENT_CACHE).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .runner import LOCAL, RuntimeSpec
from .suites import cache_dir

# what a worker imports besides the framework (conformance.worker -> adapters.base -> reference),
# and setuptools: torch's compiler imports it (torch.utils.cpp_extension), and torch 2.9 and older
# (2.6.0 and 2.9.1 seen) require it only on Python 3.12 and newer: without it compile cannot run
WORKER_REQUIREMENTS = ("numpy", "python-flint", "ml_dtypes", "packaging", "setuptools")
MANIFEST = "xent-env.json"


class EnvError(ValueError):
    pass


def env_root() -> Path:
    return Path(os.environ["XENT_ENV_DIR"]) if os.environ.get("XENT_ENV_DIR") else cache_dir() / "envs"


def name_for(requirements: list[str]) -> str:
    """A stable name from the requirements: jax==0.9.2 optax==0.2.8 -> jax-0.9.2+optax-0.2.8."""
    parts = [re.sub(r"[^A-Za-z0-9.]+", "-", r.replace("==", "-")).strip("-") for r in requirements]
    return "+".join(parts)


def _uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    try:
        import uv  # the uv package ships its binary
        return [uv.find_uv_bin()]
    except (ImportError, FileNotFoundError):
        raise EnvError("xent env create needs uv: pip install uv") from None


def create(requirements: list[str], name: str | None = None, python: str | None = None,
           uv_args: list[str] = (), echo=print) -> RuntimeSpec:
    if not requirements:
        raise EnvError("xent env create: name at least one requirement, e.g. jax==0.9.2 optax==0.2.8")
    name = name or name_for(requirements)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name) or name == LOCAL:
        raise EnvError(f"xent env create: {name!r} is not a usable runtime name")
    folder = env_root() / name
    python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    uv = _uv()
    subprocess.run([*uv, "venv", "--quiet", "--allow-existing", "--python", python, str(folder)], check=True)
    interpreter = folder / "bin" / "python"
    echo(f"installing {' '.join(requirements)} into {folder} ...")
    done = subprocess.run([*uv, "pip", "install", "--quiet", "--python", str(interpreter), *uv_args,
                           *requirements, *WORKER_REQUIREMENTS])
    if done.returncode != 0:
        raise EnvError(f"xent env create: uv pip install failed (exit {done.returncode}) for {' '.join(requirements)}")
    (folder / MANIFEST).write_text(json.dumps({"name": name, "python": str(interpreter),
                                               "requirements": list(requirements)}, indent=1) + "\n")
    return RuntimeSpec(name, str(interpreter))


def listed() -> list[dict]:
    root = env_root()
    found = []
    for manifest in sorted(root.glob(f"*/{MANIFEST}")) if root.exists() else ():
        try:
            found.append(json.loads(manifest.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return found


def resolve(spec: str) -> RuntimeSpec:
    """`local`, `NAME=PYTHON`, or the NAME of an environment made by `xent env create`."""
    name, _, python = spec.partition("=")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name):
        raise EnvError(f"--runtime {spec!r}: a runtime name is letters, digits, '.', '_', '+' and '-'")
    if python:
        if not (shutil.which(python) or Path(python).is_file()):
            raise EnvError(f"--runtime {spec!r}: no interpreter at {python!r}")
        return RuntimeSpec(name, python)
    if name == LOCAL:
        return RuntimeSpec(LOCAL, sys.executable)
    for env in listed():
        if env["name"] == name:
            return RuntimeSpec(name, env["python"])
    raise EnvError(f"--runtime {spec!r}: no such environment (xent env list); give NAME=PYTHON for another interpreter")
