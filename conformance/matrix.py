"""What a test of the conformance matrix says about one (framework, case): pytest's failure
for any divergence the expectations file does not explain, with the case's inputs, expected
and observed values, the share of the tolerance and the reproducer; an xfail naming the causes
and their evidence when every divergence is known. The tests themselves are made by the
pytest plugin (conformance/pytest_plugin.py)."""
from __future__ import annotations

import math
from pathlib import Path

from . import repro
from .verdicts import CONFORMS, UNSUPPORTED


def _number(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def describe(rows: list[dict], out_dir: Path) -> str:
    """Unexpected divergences of one case, for a person: what ran, on what, and how to rerun it."""
    first = rows[0]
    lines = [f"{len(rows)} unexpected divergence(s): {first['framework']} {first.get('framework_version', '')} on "
             f"case {first['case_id']} ({first['op']}; features {first.get('features', '')})"]
    by_task: dict[tuple, list[dict]] = {}
    for r in rows:
        by_task.setdefault((r["api"], r["dtype"], r.get("device", ""), r.get("mode", "")), []).append(r)
    for (api, dtype, device, mode), task_rows in by_task.items():
        lines.append(f"\n{api} {dtype} {device} {mode}")
        lines.append(f"  inputs:   {task_rows[0].get('inputs', '')}")
        for r in task_rows:
            lines.append(f"  {r['output']}: {r['verdict']} ({r['detail']})")
            lines.append(f"    expected: {r.get('expected_values', '')}")
            lines.append(f"    observed: {r.get('observed_values') or r.get('error_message', '')}")
            lines.append(f"    max error {_number(r.get('max_ulp'))} ulp, {_number(r.get('max_tol_ratio'))} of the tolerance")
        if repro.has_file(out_dir, task_rows[0]):
            lines.append(f"  reproducer: python {Path(out_dir) / repro.file_name(task_rows[0])}")
        else:  # never a path to a file that is not there
            lines.append("  reproducer: none written" + ("" if task_rows[0].get("reproducer") else
                                                          " (these rows hold no script)"))
    scripts = [r["reproducer"] for r in rows if r.get("reproducer")]
    if scripts:
        lines += ["\nthe first reproducer, which runs as it is:\n", scripts[0]]
    return "\n".join(lines)


def check(rows: list[dict], out_dir: Path) -> str:
    """The failure text for anything unexpected ("" if none); an xfail naming the causes if all
    divergences are known."""
    import pytest

    diverging = [r for r in rows if r["verdict"] not in (CONFORMS, UNSUPPORTED)]
    unexpected = [r for r in diverging if not r["known"]]
    if unexpected:
        return describe(unexpected, out_dir)
    if diverging:
        causes = sorted({(r["known"], r["evidence"]) for r in diverging})
        pytest.xfail("known: " + "; ".join(f"{k} ({e})" for k, e in causes))
    return ""
