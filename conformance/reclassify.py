"""Classify a stored run again: each row's stored observation (bit patterns, or the
exception's type and message) against today's golden files, tolerance and expectations,
so that a baseline stays useful after those change."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from reference.golden import OUTPUTS, load_suite

from .expectations import NO_WITNESSES, Expectation, Matcher, Witnesses
from .report import results_frame
from .results import TASK, Run, RunInfo, Runtime, Task, describe_inputs, observed_from_columns, rows_for, suite_hash


def reclassify(df: pd.DataFrame, suite_dirs: dict[str, Path], expectations: list[Expectation],
               witnesses: Witnesses = NO_WITNESSES) -> Run:
    """suite_dirs: suite name (the results' `suite` column) -> its golden folder. Rows of a
    case the golden files no longer have are dropped, and named in the run's info."""
    suites = {name: load_suite(d) for name, d in suite_dirs.items() if (Path(d) / "manifest.json").exists()}
    hashes = {name: suite_hash(cases) for name, cases in suites.items()}
    cases = {(name, c.id): c for name, suite in suites.items() for c in suite}
    matchers: dict[tuple[str, str], Matcher] = {}
    rows, missing = [], set()
    loaded = (None, None)
    for key, task_rows in df.groupby(TASK, sort=False):
        suite, case_id, framework, runtime, mode, api, device, dtype = key
        case = cases.get((suite, case_id))
        if case is None:
            missing.add((suite, case_id))
            continue
        first = task_rows.iloc[0]
        versions = json.loads(first["versions"] or "{}")
        if (framework, runtime) not in matchers:
            matchers[(framework, runtime)] = Matcher.build(expectations, framework, versions, witnesses)
        rt = Runtime(framework, first["framework_version"], versions, runtime,
                     tuple(d for d in str(first["domain_errors"]).split(",") if d))
        by_output = {r["output"]: r for _, r in task_rows.iterrows()}
        if set(by_output) != set(OUTPUTS):
            continue
        if loaded[0] != (suite, case_id):
            loaded = ((suite, case_id), case.arrays())
        arrays = loaded[1]
        task = Task(suite, hashes[suite], case, dtype, api, device, first["device_name"], "", mode)
        observed = {o: observed_from_columns(by_output[o]) for o in OUTPUTS}
        rows += rows_for(task, arrays, describe_inputs(case, arrays, dtype), observed, rt,
                         matchers[(framework, runtime)])
    stale = {f"{fw} ({rt})": m.stale() for (fw, rt), m in matchers.items() if m.stale()}
    # as a run records them: which entries explained a row, which had a witness row judged
    used = {f"{fw} ({rt})": {"used": sorted(m.used), "witnessed": sorted(m.witnessed)} for (fw, rt), m in matchers.items()}
    return Run(results_frame(rows), RunInfo(expectations=used, stale=stale, witnesses=witnesses.source or "",
                                            missing_cases=[list(m) for m in sorted(missing)]))
