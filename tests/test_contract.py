"""The contract check plugins call (conformance.contract): it passes the built-in adapters and
names what is wrong with a broken table."""
import subprocess
import sys

import pytest

from conformance.adapters import FRAMEWORKS, load, missing_module
from conformance.adapters.base import Api
from conformance.contract import check_adapter, check_tables

from .conftest import ROOT


def _installed(framework):
    if missing_module(framework):
        pytest.skip(f"{framework} is not installed")
    return load(framework)


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_adapter_keeps_the_contract_tables(framework):
    """In a process of its own, as a worker loads it (Keras takes one backend a process): the
    APIs, the modes (the first one the registry's default), the dtypes, the devices."""
    if missing_module(framework):
        pytest.skip(f"{framework} is not installed")
    code = ("import sys\nfrom conformance.adapters import load\nfrom conformance.contract import check_tables\n"
            "print(check_tables(sys.argv[1], load(sys.argv[1])))")
    done = subprocess.run([sys.executable, "-c", code, framework], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_a_broken_table_is_named_entry_by_entry():
    adapter = _installed("torch")
    broken = type("Broken", (type(adapter),), {
        "__module__": type(adapter).__module__,
        "apis": (Api("a", "no_such_op", "F.cross_entropy(x, target)"),
                 Api("b", "cross_entropy", "F.cross_entropy(x, labels, reduction=reduction)", targets=("indices",)),
                 Api("c", "cross_entropy", "F.cross_entropy(x,", outputs=("grad",)),
                 Api("c", "log_softmax", "(lambda v: torch.log_softmax(v, 1))(x)"))})()
    problems = check_tables("torch", broken)
    assert "torch: API 'c' is declared twice" in problems
    assert any("API 'a': op 'no_such_op' is not one of" in p for p in problems)
    assert any("API 'b': target kind 'indices'" in p for p in problems)
    assert any("API 'b': its code names labels, defined neither" in p for p in problems)
    assert any("API 'c': outputs ('grad',) must hold 'loss'" in p for p in problems)
    assert any("API 'c': its code is not a Python expression" in p for p in problems)
    assert len(problems) == 6, problems  # the lambda's own argument is not an unknown name


@pytest.mark.slow
def test_a_builtin_adapter_passes_the_whole_check(tmp_path):
    _installed("torch")
    assert check_adapter("torch", tmp_path) == []
    assert check_adapter("no-such-framework", tmp_path) == [
        "no-such-framework: no entry point 'no-such-framework' in the group xent_conformance.adapters"]
