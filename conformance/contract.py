"""The adapter contract as a check a plugin's own tests call (docs/adapters.md):

    from conformance.contract import check_adapter
    def test_my_framework_keeps_the_contract(tmp_path):
        assert check_adapter("my-framework", tmp_path) == []

`check_adapter` returns the problems found, each a sentence naming what is wrong: the entry
point, the adapter's tables (APIs, modes, dtypes), and a real run of a sample of the default
suite through a worker, as `xent run` runs it: every API must give at least one measured row
and no row may be an adapter error (a bug of the adapter's, not the framework's)."""
from __future__ import annotations

import ast
import builtins
from pathlib import Path

from reference.golden import load_suite
from reference.ops import OPS

from .adapters import default_mode, load, missing_module, not_loadable, registry
from .adapters.base import INPUT_NAMES, VIEW_DTYPES, Adapter, unsupported_reason
from .suites import SUITES

# every op, each target kind and reduction at least once (tests/test_modes.py checks the same sample)
SAMPLE = {"ls-one-class", "ce-ignored-row-all-neg-inf", "cat-ce-out-of-range-neg1-none", "cat-cefp-below-one-soft",
          "cep-smoothing", "cat-bcel-pos-inf", "cat-bce-mixed-sum", "cat-mlsm-t-above-one", "cat-nll-ordinary-sum"}
TARGETS = {"index", "probs", "binary"}
PARAMS = {"weight", "pos_weight", "ignore_index", "label_smoothing"}


def check_tables(framework: str, adapter: Adapter) -> list[str]:
    """What the adapter declares: APIs that name known ops, targets and parameters, whose call is
    an expression over the inputs and the adapter module's names; modes with the entry's default
    first; dtypes the reference computes."""
    problems = []
    namespace = {**vars(builtins), **adapter._namespace(), **dict.fromkeys(INPUT_NAMES)}
    if not adapter.apis:
        problems.append(f"{framework}: the adapter declares no API")
    names = [a.name for a in adapter.apis]
    problems += [f"{framework}: API {n!r} is declared twice" for n in sorted({n for n in names if names.count(n) > 1})]
    for api in adapter.apis:
        where = f"{framework}: API {api.name!r}"
        if api.op not in OPS:
            problems.append(f"{where}: op {api.op!r} is not one of {', '.join(OPS)}")
        problems += [f"{where}: target kind {t!r} is not one of {', '.join(sorted(TARGETS))}"
                     for t in api.targets if t not in TARGETS]
        problems += [f"{where}: parameter {p!r} is not one of {', '.join(sorted(PARAMS))}"
                     for p in api.params if p not in PARAMS]
        if "loss" not in api.outputs or not set(api.outputs) <= {"loss", "grad"}:
            problems.append(f"{where}: outputs {api.outputs} must hold 'loss' and at most 'grad'")
        try:
            tree = ast.parse(api.code, api.name, "eval")
        except SyntaxError as e:
            problems.append(f"{where}: its code is not a Python expression: {e.msg}")
            continue
        bound = {a.arg for node in ast.walk(tree) if isinstance(node, ast.Lambda) for a in node.args.args}
        unknown = sorted({node.id for node in ast.walk(tree) if isinstance(node, ast.Name)
                          and node.id not in namespace and node.id not in bound})
        if unknown:
            problems.append(f"{where}: its code names {', '.join(unknown)}, defined neither in the adapter module "
                            f"nor among the inputs ({', '.join(INPUT_NAMES)})")
    modes = [m.name for m in adapter.modes]
    if not modes or len(set(modes)) != len(modes):
        problems.append(f"{framework}: modes {modes} must be one or more distinct names")
    elif modes[0] != default_mode(framework):
        problems.append(f"{framework}: the adapter's first mode {modes[0]!r} is not its entry's default_mode "
                        f"{default_mode(framework)!r}")
    if not adapter.dtypes or not set(adapter.dtypes) <= set(VIEW_DTYPES):
        problems.append(f"{framework}: dtypes {adapter.dtypes} must be some of {', '.join(VIEW_DTYPES)}")
    if not adapter.devices():
        problems.append(f"{framework}: the adapter lists no device")
    return problems


def check_run(framework: str, out_dir: Path) -> list[str]:
    """The sample through a real worker: each API measured at least once, no adapter error."""
    from . import runner
    from .expectations import load_expectations
    cases = load_suite(SUITES["default"][1])
    (run,) = runner.run([SUITES["default"][1]], [framework], out_dir=Path(out_dir), expectations=load_expectations(),
                        case_ids=SAMPLE)
    if run.skipped or run.error:
        return [f"{framework}: the run did not complete: {run.skipped or run.error}"]
    problems = [f"{framework}: {r.api} {r.case_id} {r.dtype} {r.output}: {r.detail}"
                for r in run.rows if "adapter error" in r.detail]
    measured = {r.api for r in run.rows if r.verdict != "unsupported"}
    sample = [c for c in cases if c.id in SAMPLE]
    problems += [f"{framework}: API {a.name!r} measured nothing on the sample, though it can express a case of it"
                 for a in load(framework).apis
                 if a.name not in measured and any(unsupported_reason(a, c) is None for c in sample)]
    return problems


def check_adapter(framework: str, out_dir: Path) -> list[str]:
    """Every problem found with the framework's plugin: [] when it keeps the contract."""
    if framework in not_loadable():
        return [f"{framework}: not loadable: {not_loadable()[framework]}"]
    if framework not in registry():
        return [f"{framework}: no entry point {framework!r} in the group xent_conformance.adapters"]
    missing = missing_module(framework)
    if missing:
        return [f"{framework}: needs the module {missing!r}, not installed"]
    try:
        adapter = load(framework)
    except Exception as e:  # noqa: BLE001 (the problem is the report)
        return [f"{framework}: the adapter module does not import: {type(e).__name__}: {e}"]
    problems = check_tables(framework, adapter)
    return problems or check_run(framework, out_dir)
