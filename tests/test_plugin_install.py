"""The ONNX plugin as a user gets it: the project's wheel and `pip install plugins/xent-onnx` in a
fresh environment, `xent run` from a folder outside the checkout; then its import broken, then
uninstalled, each leaving `xent run` working for the other frameworks with one line saying why."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT
from .test_wheel import _find_links, _uv, built_wheel


@pytest.mark.slow
def test_the_onnx_plugin_installs_from_its_folder_and_a_broken_or_missing_plugin_stops_nobody(tmp_path):
    source, wheel = built_wheel(tmp_path)
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    # the wheel first, then the plugin from its folder (its dependency on xent-conformance is met)
    subprocess.run([_uv(), "pip", "install", "--quiet", "--python", str(python), *_find_links(),
                    "-c", str(ROOT / "constraints.txt"), str(wheel), "torch", "pytest"], check=True)
    subprocess.run([_uv(), "pip", "install", "--quiet", "--python", str(python), *_find_links(),
                    "-c", str(ROOT / "constraints.txt"), str(source / "plugins" / "xent-onnx")], check=True)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("PYTEST_")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", XENT_CACHE=str(tmp_path / "cache"))

    def run(*args):
        return subprocess.run(args, cwd=elsewhere, env=env, capture_output=True, text=True)

    def xent_run(out, *frameworks):
        done = run("xent", "run", "--shard", "1/8", "--out", out, *(("--frameworks", ",".join(frameworks))
                                                                    if frameworks else ()))
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done.stdout

    where = run("python", "-c", "import xent_onnx; print(xent_onnx.__file__)")
    assert where.returncode == 0 and Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr
    out = xent_run("installed", "torch", "onnxruntime", "onnx-reference")
    for name in ("onnxruntime 1.", "onnx-reference 1.", "torch 2."):
        assert name in out and "0 unexpected" in out.split(name, 1)[1].splitlines()[0], out
    # the plugin's own tests, as its maintainer runs them, from its folder
    tested = run("pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "basetemp"),
                 str(source / "plugins" / "xent-onnx" / "tests"))
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]

    # its import broken: one line, and the others run (the expectations naming it still load)
    installed = Path(where.stdout.strip())
    installed.write_text("raise ImportError('broken on purpose')\n")
    out = xent_run("broken")
    broken = [line for line in out.splitlines() if "not loadable" in line]
    assert len(broken) == 2 and "skipped plugin onnxruntime: not loadable: xent_onnx:ONNXRUNTIME: ImportError: " \
        "broken on purpose" in broken, out
    assert "torch 2." in out and "0 unexpected" in out.split("torch 2.", 1)[1].splitlines()[0], out

    # uninstalled: no word of it, and the others run
    subprocess.run([_uv(), "pip", "uninstall", "--quiet", "--python", str(python), "xent-onnx"], check=True)
    out = xent_run("uninstalled")
    assert not [line for line in out.splitlines() if line.startswith(("onnx", "skipped plugin"))], out
    assert "torch 2." in out and "0 unexpected" in out.split("torch 2.", 1)[1].splitlines()[0], out
