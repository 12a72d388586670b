"""`xent`: generate golden files, run them against frameworks, build the report."""
from __future__ import annotations

import argparse
import importlib
import json
import math
import shutil
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reference.casefile import CaseFileError, load_case_files
from reference import large
from reference.ops import OPS
from reference.golden import GoldenFileError, generate
from reference.locations import CHECKOUT

from . import envs, journal, repro, runner
from .protocol import ALL_MODES
from .adapters import FRAMEWORKS, default_mode
from .suites import BASELINES_DIR, SUITES, USER_GOLDEN_DIR  # a checkout's folders, or the package data and a user cache
from .expectations import DEFAULT_PATH, ExpectationsError, load_expectations, stale_message, stale_of, witnesses_for
from .gates import DIFF_CLASSES, RUN_FINDINGS, parse_names
from .results import IDENTITY, Run, RunInfo



def _progress_bar(desc: str):
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, unit="task", file=sys.stderr, disable=None)

    def update(done: int, more: int) -> None:
        if more:
            bar.total += more
            bar.refresh()
        if done:
            bar.update(done)

    return bar, update


def _generate_with_bar(specs, out_dir: Path, name: str, force: bool = False) -> Path:
    """Golden files of case definitions, with a progress bar (on a terminal) case by case."""
    bar, progress = _progress_bar(f"xent generate ({name})")
    progress(0, len(specs))
    try:
        return generate(specs, out_dir, name, progress=lambda case_id: progress(1, 0), force=force)
    finally:
        bar.close()


def cmd_generate(args) -> int:
    specs_of, golden_dir = SUITES[args.suite]
    if args.suite == "large" and not args.cases:
        bar, progress = _progress_bar("xent generate --suite large")
        bar.total = sum(1 for _ in large.cases())
        try:
            manifest = large.generate(Path(args.out) if args.out else golden_dir, lambda case_id: progress(1, 0),
                                      force=args.force)
        finally:
            bar.close()
        print(f"{bar.total} cases -> {manifest}")
        return 0
    if args.cases:
        specs, out_dir, name = load_case_files(args.cases), Path(args.out) if args.out else USER_GOLDEN_DIR, "user"
    else:
        specs, out_dir, name = specs_of(), Path(args.out) if args.out else golden_dir, args.suite
    manifest = _generate_with_bar(specs, out_dir, name, force=args.force)
    print(f"{len(specs)} cases -> {manifest}")
    return 0


def _suite_dirs(results: Path) -> dict[str, Path]:
    """The golden folders a results file's suites name: the stored suites, and the run's own
    user cases beside its results."""
    return {name: folder for name, (_, folder) in SUITES.items()} | {"user": results.parent / "golden" / "user"}


# what turns rows into results files and reports; imported where needed, so that `xent run`
# starts its workers without waiting for pandas
REPORTING_MODULES = ("conformance.report", "conformance.diff", "matplotlib.figure")


def _import_all(names) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:  # reported where it is needed
            pass


def _read_run(spec):
    from . import diff, report
    return report.read_results(diff.results_path(spec))


def _print_stale(stale: dict) -> None:
    for who, ids in stale.items():
        print(f"{who}: {stale_message(ids)}")


def _clear_outputs(out: Path) -> None:
    """A new run never leaves an older run's files looking current."""
    for name in ("results.parquet", "report.html", "diff.html"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / journal.PARTIAL, ignore_errors=True)
    shutil.rmtree(out / repro.FOLDER, ignore_errors=True)


def _finish(run: Run, out: Path, since=None) -> None:
    from . import report
    report.write_results(run, out / "results.parquet")
    # the reproducer files (a thousand small writes, waiting on the disk) while the report renders
    with ThreadPoolExecutor(1) as pool:
        files = pool.submit(repro.write_files, run.rows, out)
        report.write_report(run.rows, out / "report.html", since, run.info)
        files.result()
    shutil.rmtree(out / journal.PARTIAL, ignore_errors=True)


def _print_counts(df, expectations_path, report_path: Path, results_path: Path, reproducers: Path) -> None:
    """The counts that matter, per framework and runtime, the cases no API of a framework could
    express, and where the report is (only files that exist)."""
    from . import report
    for c in report.framework_counts(df).itertuples(index=False):
        print(f"{c.framework} {c.version} ({c.runtime}, {c.mode}): {c.conforming} outputs conform, {c.known} known "
              f"divergences, {c.unexpected} unexpected{' <-' if c.unexpected else ''}, {c.unsupported} unsupported")
    for c in report.inexpressible(df).itertuples(index=False):
        more = f" (+{c.count - 3} more)" if c.count > 3 else ""
        print(f"  {c.framework} ({c.runtime}): no API can express {c.count} case(s): {c.examples}{more}; "
              f"e.g. {c.reason}")
    print(f"expectations: {expectations_path}")
    print(f"report:  {report_path}")
    if results_path.exists():
        print(f"results: {results_path}")
    if reproducers.is_dir():
        print(f"reproducers: {reproducers}/")


def _writable_folder(out: Path, option: str = "--out") -> None:
    """A run's folder, made and checked before anything runs: one clear error, not a traceback
    after the measurements."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option} {out}: not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".xent-write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"{option} {out}: cannot write there ({e.strerror or e})") from None


def _nonnegative(value: float, option: str) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{option} {value}: a finite number at or above 0")
    return value


def _baseline_for(baseline, frameworks, dtypes, devices, suites, shard, modes):
    """The baseline's rows of what this run was asked to measure: a run of one framework, of some
    dtypes, modes or of the user's own cases is not missing the rest. `modes`: the (framework,
    mode) pairs that ran."""
    from fnmatch import fnmatchcase
    keep = (baseline["framework"].isin(frameworks) & baseline["suite"].isin(suites)
            & (baseline["dtype"].isin(dtypes) if dtypes else True)
            & [pair in modes for pair in zip(baseline["framework"], baseline["mode"])])
    if devices:
        keep &= baseline["device"].map(lambda d: d == "-" or any(fnmatchcase(d, p) for p in devices))
    if shard != (1, 1):
        keep &= [runner.in_shard(s, c, shard) for s, c in zip(baseline["suite"], baseline["case_id"])]
    return baseline[keep]


def cmd_run(args) -> int:
    out = Path(args.out)
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ValueError(f"--timeout {args.timeout}: a number of seconds above 0")
    _nonnegative(args.drift, "--drift")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers {args.workers}: at least 1")
    fail_on = set(parse_names(args.fail_on, "--fail-on", RUN_FINDINGS + DIFF_CLASSES))
    shard = _shard(args.shard)
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = [f for f in frameworks if f not in FRAMEWORKS]
    if unknown or not frameworks:
        raise ValueError(f"--frameworks {args.frameworks!r}: "
                         + (f"unknown framework {unknown[0]!r}; " if unknown else "") + f"choose from {', '.join(FRAMEWORKS)}")
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip()) if args.modes else None
    if modes is not None and not modes:
        raise ValueError(f"--modes {args.modes!r}: name at least one mode, or 'all'")
    runtimes = [envs.resolve(spec) for spec in args.runtime] if args.runtime else None
    if runtimes and len({r.name for r in runtimes}) != len(runtimes):
        raise envs.EnvError("--runtime: each runtime needs its own name")
    expectations = load_expectations(args.expectations, FRAMEWORKS)  # checked before anything is written
    baseline = _read_run(args.baseline) if args.baseline else None
    witnesses = witnesses_for(args.baseline)
    suite_names = args.suite or ([] if args.cases else ["default"])
    suite_dirs = [SUITES[s][1] for s in suite_names]
    specs = load_case_files(args.cases) if args.cases else []  # every file checked before anything runs
    _writable_folder(out)
    _clear_outputs(out)
    if specs:
        suite_dirs.append(_generate_with_bar(specs, out / "golden" / "user", "user").parent)
    log = journal.Journal(out)
    control = runner.Control(sink=log.write)
    received = []

    def stop(signum, frame):  # finish the tasks in flight, write what was measured, mark it incomplete
        received.append(signum)
        control.request_stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    bar, progress = _progress_bar("xent run")
    # the results' modules (pandas, matplotlib: half a second) load while the workers import
    # their frameworks, not before the workers start
    importer = threading.Thread(target=_import_all, args=(REPORTING_MODULES,), daemon=True)
    importer.start()
    try:
        runs = runner.run(suite_dirs, frameworks, out_dir=out, timeout=args.timeout, expectations=expectations,
                          progress=progress, dtypes=set(args.dtypes) if args.dtypes else None, runtimes=runtimes,
                          devices=tuple(args.devices) if args.devices else None, control=control, shard=shard,
                          witnesses=witnesses, modes=modes,
                          lanes=args.workers or runner.lanes_for(frameworks, len(frameworks) * len(runtimes or [None])))
    finally:
        bar.close()
        log.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    importer.join()  # one thread imports at a time
    from . import diff, report
    df = report.results_frame([row for r in runs for row in r.rows])
    sharded = shard != (1, 1)
    not_run = sum(r.planned - r.done for r in runs if not r.skipped)
    why = f"signal {received[0]}" if received else "a framework stopped early"
    info = RunInfo(
        expectations={f"{r.framework} ({r.runtime})": {"used": r.used, "witnessed": r.witnessed}
                      for r in runs if not r.skipped},
        # a shard sees only some cases: whether an expectation is stale is decided over all shards (xent merge)
        stale={} if sharded else {f"{r.framework} ({r.runtime})": r.stale for r in runs if r.stale},
        witnesses=witnesses.source or "", shard=list(shard) if sharded else None,
        incomplete={"tasks_not_run": int(not_run), "why": why} if received or not_run else None)
    from .adapters import not_loadable
    for name, why in not_loadable().items():
        print(f"skipped plugin {name}: not loadable: {why}")
    for r in runs:
        if r.skipped:
            print(f"skipped {r.framework} ({r.runtime}): {r.skipped}")
        lacking = [m for m in modes or () if m != ALL_MODES and m not in r.available_modes]
        if lacking and r.available_modes and not r.skipped:
            print(f"{r.framework} ({r.runtime}) has no mode {', '.join(lacking)}; it ran {', '.join(r.modes)} "
                  f"(its modes: {', '.join(r.available_modes)})")
        for mode, why in r.unavailable.items() if not r.skipped else ():
            print(f"skipped {r.framework} ({r.runtime}) mode {mode}: it cannot run here: {why}")
        if r.error:
            print(f"stopped {r.framework} ({r.runtime}) early, its rows kept: {r.error}", file=sys.stderr)
    for message in runs[0].golden_errors if runs else []:
        print(f"xent: left out: {message} (regenerate it with xent generate)", file=sys.stderr)
    _print_stale(info.stale)
    offered = {m for r in runs for m in r.available_modes}
    unknown_modes = [m for m in modes or () if m != ALL_MODES and m not in offered]
    if unknown_modes and offered:  # a typo must not pass for a gate that ran nothing
        raise ValueError(f"--modes: no framework has a mode {unknown_modes[0]!r} (modes: "
                         + "; ".join(f"{r.framework}: {', '.join(r.available_modes)}" for r in runs if r.available_modes) + ")")
    if df.empty:
        print("xent: no results (no framework could run)", file=sys.stderr)
        return 128 + received[0] if received else 1
    if baseline is not None:
        baseline = _baseline_for(baseline, frameworks, args.dtypes, args.devices,
                                 set(df["suite"]) | {Path(d).name for d in suite_dirs}, shard,
                                 {(r.framework, m) for r in runs for m in r.modes})
    since = diff.compare(baseline, df, drift=args.drift, old_label=str(args.baseline), new_label=str(out)) \
        if baseline is not None else None
    run = Run(df, info)
    _finish(run, out, since)
    differences = report.differences(df)
    unexpected = differences[differences["known"] == ""] if not differences.empty else differences
    _print_counts(df, args.expectations, out / "report.html", out / "results.parquet", out / repro.FOLDER)
    if info.incomplete:
        print(f"INCOMPLETE: {info.incomplete['tasks_not_run']} tasks not run ({info.incomplete['why']})", file=sys.stderr)
    if since is not None:
        print(diff.summary_text(since))
    failed = bool(("unexpected" in fail_on and len(unexpected)) or ("stale" in fail_on and info.stale)
                  or (since is not None and diff.failed(since, tuple(fail_on))))
    if args.json:
        not_run = {f"{r.framework} ({r.runtime})": r.skipped or {m: f"cannot run here: {why}" for m, why in r.unavailable.items()}
                   for r in runs if r.skipped or r.unavailable}
        _write_summary(Path(args.json), run, since, failed, not_run)
    if received:
        return 128 + received[0]
    return 1 if failed else 0


def _write_summary(path: Path, run: Run, since, failed: bool, skipped: dict | None = None) -> None:
    """What a CI system acts on, for machines: counts per framework and runtime (README), and what
    did not run: `skipped` maps "framework (runtime)" to why, or to {mode: why} for modes alone."""
    from . import report
    per = {}
    def counts(rows) -> dict:
        diverging = rows[~rows["verdict"].isin(["conforms", "unsupported"])]
        return {"verdicts": rows["verdict"].value_counts().to_dict(), "differences": int(len(diverging)),
                "unexpected": int((diverging["known"] == "").sum())}

    for (framework, runtime), rows in run.rows.groupby(["framework", "runtime"]):
        per[f"{framework} ({runtime})"] = {"version": rows["framework_version"].iloc[0], **counts(rows),
                                          "modes": {mode: counts(m) for mode, m in rows.groupby("mode")}}
    summary = {"frameworks": per, "skipped": skipped or {}, "stale": run.info.stale, "incomplete": run.info.incomplete,
               "baseline": since.counts() if since is not None else None, "failed": failed}
    report.atomic_write_bytes(path, (json.dumps(summary, indent=1, default=int) + "\n").encode())


def cmd_discover(args) -> int:
    """A search that finds divergences no case anticipated (conformance/discover, docs/discover.md)."""
    from . import discover
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = [f for f in frameworks if f not in FRAMEWORKS]
    if unknown or not frameworks:
        raise ValueError(f"--frameworks {args.frameworks!r}: "
                         + (f"unknown framework {unknown[0]!r}; " if unknown else "") + f"choose from {', '.join(FRAMEWORKS)}")
    ops = tuple(o.strip() for o in args.ops.split(",") if o.strip()) if args.ops else tuple(OPS)
    if not ops or any(o not in OPS for o in ops):
        raise ValueError(f"--ops {args.ops!r}: choose from {', '.join(OPS)}")
    if args.examples is not None and args.examples < 1:
        raise ValueError(f"--examples {args.examples}: at least 1")
    if args.examples is None and not (math.isfinite(args.seconds) and args.seconds > 0):
        raise ValueError(f"--seconds {args.seconds}: a number of seconds above 0")
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if not modes:
        raise ValueError(f"--modes {args.modes!r}: name at least one mode, or 'all'")
    out = Path(args.out)
    _writable_folder(out)
    for name in (discover.CASES_FILE, discover.FINDINGS_FILE, discover.SUMMARY_FILE):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "replay", ignore_errors=True)
    shutil.rmtree(out / "golden", ignore_errors=True)
    opts = discover.Options(
        frameworks, out, seconds=args.seconds, examples=args.examples, seed=args.seed, modes=modes,
        dtypes=tuple(args.dtypes), ops=ops, shard=_shard(args.shard), relations=not args.no_relations,
        expectations=load_expectations(args.expectations, FRAMEWORKS),
        catalog=discover.catalog_keys(sorted(BASELINES_DIR.glob("default-*.parquet"))))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    from tqdm import tqdm
    bar = tqdm(total=100, desc="xent discover: search", unit="%", bar_format="{desc} {bar} {elapsed}")
    offsets = {"search": 0, "shrink": 50, "prove": 70}
    widths = {"search": 50, "shrink": 20, "prove": 30}

    def progress(phase: str, fraction: float) -> None:
        at = int(offsets[phase] + widths[phase] * fraction)
        if at != bar.n or not bar.desc.endswith(phase):
            bar.set_description(f"xent discover: {phase}", refresh=False)
            bar.n = at
            bar.refresh()

    try:
        outcome = discover.discover(opts, progress, stop)
    finally:
        bar.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for framework, why in outcome.skipped.items():
        print(f"skipped {framework}: {why}")
    new = [f for f in outcome.findings if not f.in_catalog]
    unexplained = [f for f in new if not f.signature.cause]
    disproved = [f for f in new if discover.disproved(f)]
    unproven = [f for f in new if not discover.stable(f) and not discover.disproved(f)]
    print(f"examples: {', '.join(f'{k} {v}' for k, v in outcome.examples.items())}; "
          f"the reference could not decide {outcome.undecided}")
    print(f"signatures: {len(outcome.findings)}; new (the default suite does not produce them): {len(new)}, "
          f"of which {len(unexplained)} not explained by the expectations")
    print(f"proof: {len(new) - len(disproved) - len(unproven)} stable on replay (1 and 2 threads, fresh workers); "
          f"{len(disproved)} not reproduced (false alarms); {len(unproven)} not replayed within the budget")
    if (out / discover.CASES_FILE).exists():
        print(f"cases:    {out / discover.CASES_FILE}")
    print(f"findings: {out / discover.SUMMARY_FILE}")
    if (out / "replay").is_dir():
        print(f"replay:   {out / 'replay'} (results.parquet, report.html, repro/)")
    if outcome.interrupted:
        print("INTERRUPTED: what was found so far is written", file=sys.stderr)
        return 130
    return 0


def _shard(text: str | None) -> tuple[int, int]:
    if not text:
        return (1, 1)
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise ValueError(f"--shard {text!r}: K/N with 1 <= K <= N, e.g. 2/3")
    return int(k), int(n)


def cmd_merge(args) -> int:
    """Results of several runs (the shards of one, or the jobs of a CI matrix) as one."""
    from . import diff, report
    import pandas as pd
    runs = [report.read_run(diff.results_path(p)) for p in args.runs]
    merged = pd.concat([r.rows for r in runs], ignore_index=True)
    key = IDENTITY
    dup = merged.duplicated(key)
    if dup.any():
        first = merged[dup].iloc[0]
        raise ValueError(f"the runs overlap: {', '.join(f'{k}={first[k]}' for k in key)} is in more than one")
    scopes: dict[str, dict[str, set]] = {}
    for run in runs:
        for who, seen in run.info.expectations.items():
            entry = scopes.setdefault(who, {"used": set(), "witnessed": set()})
            entry["used"] |= set(seen["used"])
            entry["witnessed"] |= set(seen.get("witnessed", ()))  # runs before witnesses judge nothing stale
    incomplete = [r.info.incomplete for r in runs if r.info.incomplete]
    info = RunInfo(
        expectations={who: {k: sorted(v) for k, v in s.items()} for who, s in scopes.items()},
        stale={who: stale for who, s in scopes.items() if (stale := stale_of(s["witnessed"], s["used"]))},
        incomplete={"tasks_not_run": sum(max(i["tasks_not_run"], 0) for i in incomplete),
                    "why": "a merged run was incomplete"} if incomplete else None)
    out = Path(args.out)
    _writable_folder(out)
    _clear_outputs(out)
    _finish(Run(merged, info), out)
    _print_stale(info.stale)
    print(f"{len(merged)} rows from {len(runs)} runs\nresults: {out / 'results.parquet'}\nreport:  {out / 'report.html'}")
    return 0


def cmd_report(args) -> int:
    from . import diff, report
    from .reclassify import reclassify
    path = diff.results_path(args.results)
    partial = Path(args.results) / journal.PARTIAL
    if Path(args.results).is_dir() and not path.exists() and partial.is_dir():
        df = report.results_frame(journal.read_partial(args.results))  # an interrupted or killed run
        stopped = RunInfo(incomplete={"tasks_not_run": -1, "why": "the run was stopped before it finished"})
        _finish(Run(df, stopped), path.parent)
        print(f"INCOMPLETE: assembled {len(df)} rows from {partial}", file=sys.stderr)
    if not path.exists():
        raise ValueError(f"{args.results}: no results.parquet (nor an interrupted run's partial/) there")
    run = report.read_run(path)
    results = path
    if args.reclassify:
        run = reclassify(run.rows, _suite_dirs(path), load_expectations(args.expectations, FRAMEWORKS), witnesses_for())
        results = path.with_name("results-reclassified.parquet")
        report.write_results(run, results)
        _print_stale(run.info.stale)
    out = Path(args.out) if args.out else path.with_name("report.html")
    _writable_folder(out.parent, "--out")
    report.write_report(run.rows, out, info=run.info)
    repro.write_files(run.rows, out.parent, source=path.parent)
    _print_counts(run.rows, args.expectations if args.reclassify else "as recorded", out, results, out.parent / repro.FOLDER)
    return 0


def _load_side(spec: str, args, expectations) -> Run:
    from . import diff, report
    from .reclassify import reclassify
    path = diff.results_path(spec)
    run = report.read_run(path)
    if args.reclassify:
        run = reclassify(run.rows, _suite_dirs(path), expectations, witnesses_for())
    return run


def _select(df, column: str, value: str, source: str):
    if value not in set(df[column]):
        raise ValueError(f"{source}: no {column} {value!r} (there: {', '.join(sorted(set(df[column])))})")
    # pair across the two values: runtimes by framework (the version check), devices by the rest of the key
    return df[df[column] == value].assign(**{column: "*"})


def cmd_diff(args) -> int:
    from . import diff
    fail_on = parse_names(args.fail_on, "--fail-on", DIFF_CLASSES)
    _nonnegative(args.drift, "--drift")
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()] if args.frameworks else None
    if frameworks is not None and not frameworks:
        raise ValueError(f"--frameworks {args.frameworks!r}: name at least one framework")
    expectations = load_expectations(args.expectations, FRAMEWORKS) if args.reclassify else []
    old_spec, new_spec = args.old, args.new or args.old
    paired = args.runtimes or args.devices or args.modes or args.backends
    if not args.new and not paired:
        raise ValueError("xent diff OLD NEW: give two results files or run folders "
                         "(or one run with --runtimes A B, --devices A B, --modes A B or --backends A B)")
    old_run = _load_side(old_spec, args, expectations)
    new_run = old_run if new_spec == old_spec else _load_side(new_spec, args, expectations)
    old, new = old_run.rows, new_run.rows
    labels = [old_spec, new_spec]
    # a backend diff pairs each backend in its default mode unless --modes says
    modes = args.modes or (args.backends and [default_mode(f) for f in args.backends])
    for column, pair in (("runtime", args.runtimes), ("device", args.devices), ("mode", modes),
                         ("framework", args.backends)):
        if pair:
            a, b = pair
            old, new = _select(old, column, a, old_spec), _select(new, column, b, new_spec)
            labels = [f"{old_spec} {column} {a}", f"{new_spec} {column} {b}"]
    if args.backends:
        labels = [f"{old_spec} {f} ({m})" for f, m in zip(args.backends, modes)]
    shared = set(old["framework"]) & set(new["framework"])
    if paired:  # a runtime, device or mode holds only some frameworks: compare those
        old, new = old[old["framework"].isin(shared)], new[new["framework"].isin(shared)]
    if frameworks:
        present = set(old["framework"]) | set(new["framework"])
        absent = [f for f in frameworks if f not in present]
        if absent:
            raise ValueError(f"--frameworks: no rows of {absent[0]!r} in either run (there: {', '.join(sorted(present))})")
        old, new = old[old["framework"].isin(frameworks)], new[new["framework"].isin(frameworks)]
    d = diff.compare(old, new, drift=args.drift, old_label=labels[0], new_label=labels[1], across=bool(args.modes or args.backends))
    print(diff.summary_text(d))
    _print_stale(new_run.info.stale)
    html_path = Path(args.html) if args.html else diff.results_path(new_spec).parent / "diff.html"
    diff.write_html(d, html_path)
    print(f"diff: {html_path}")
    if args.json:
        diff.write_json(d, Path(args.json))
    return 1 if diff.failed(d, fail_on) else 0


def cmd_env(args) -> int:
    if args.env_command == "create":
        rt = envs.create(args.requirements, name=args.name, python=args.python, uv_args=args.uv_arg or [])
        print(f"runtime {rt.name}: {rt.python}\nuse it with: xent run --runtime {rt.name}")
        return 0
    found = envs.listed()
    if not found:
        print(f"no environments under {envs.env_root()} (xent env create REQUIREMENT...)")
    for env in found:
        print(f"{env['name']:<32} {env['python']}  ({' '.join(env['requirements'])})")
    return 0


def cmd_baseline(args) -> int:
    from . import diff, report
    if CHECKOUT is None:
        raise ValueError("xent baseline update: baselines/ belongs to a checkout; outside one, pass any run "
                         "to --baseline (xent run --baseline RUN, pytest --xent-baseline RUN)")
    source = diff.results_path(args.source)
    # a baseline is for diffing: the reproducer scripts (four fifths of a run's file) stay with
    # the run they came from
    run = report.read_run(source)
    df = run.rows.drop(columns=["reproducer"])
    target = BASELINES_DIR / f"{args.name}.parquet"
    report.write_results(Run(df, run.info), target)
    print(f"baseline {args.name}: {len(df)} rows from {source} -> {target}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad option value said in one line (exit 2), as every other bad input is."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="xent", description="Cross-entropy conformance across PyTorch, TensorFlow and JAX.")
    p.add_argument("--version", action="version", version=f"xent-conformance {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write golden files from case definitions")
    g.add_argument("--suite", default="default", choices=sorted(SUITES))
    g.add_argument("--cases", nargs="+", metavar="PATH", help="user case files (TOML) instead of a suite")
    g.add_argument("--out", help="output folder (default: the suite's folder under cases/golden/)")
    g.add_argument("--force", action="store_true", help="write into a folder that holds other files (never deleted)")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("run", help="run golden suites against the installed frameworks")
    r.add_argument("--cases", nargs="+", metavar="PATH", help="user case files (TOML); replaces the default suite "
                   "unless --suite is given too")
    r.add_argument("--suite", action="append", choices=sorted(SUITES), help="a stored suite (repeatable)")
    r.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated (default: all)")
    r.add_argument("--dtypes", nargs="+", choices=["float64", "float32", "float16", "bfloat16"])
    r.add_argument("--devices", nargs="+", metavar="GLOB", help="only these devices, by label (cpu, cuda:0, 'cuda:*')")
    r.add_argument("--out", default="reports/latest", help="where results.parquet and report.html go")
    r.add_argument("--timeout", type=float, default=120.0, help="seconds a single task may take")
    r.add_argument("--expectations", default=str(DEFAULT_PATH), help="the known-divergences file")
    r.add_argument("--runtime", action="append", metavar="NAME[=PYTHON]",
                   help="run the workers under this interpreter (repeatable): NAME=PYTHON, 'local', or an environment "
                        "of `xent env list`; given any, only the runtimes named run")
    r.add_argument("--baseline", metavar="RESULTS", help="a stored run to diff against (report section, exit code)")
    r.add_argument("--drift", type=float, default=0.25,
                   help="with --baseline: how far an output may move, in shares of the tolerance, before a move on "
                        "the same machine kind is 'changed' (default 0.25)")
    r.add_argument("--fail-on", default="regression,missing",
                   help="what makes the exit code 1, comma-separated: 'unexpected' (a divergence the expectations do "
                        "not explain), 'stale' (an expectation whose witness cases ran and that explained nothing), "
                        f"and with --baseline the diff's classes ({', '.join(DIFF_CLASSES)}; default regression,missing)")
    r.add_argument("--modes", metavar="MODE,...",
                   help="execution modes, comma-separated, or 'all': e.g. torch eager,compile,decomp; tensorflow "
                        "eager,function,xla; jax jit,eager (every framework's: README, Execution modes; "
                        "default: each framework's first, today's mode)")
    r.add_argument("--json", metavar="FILE", help="a summary for machines: counts per framework, stale, baseline")
    r.add_argument("--shard", metavar="K/N", help="run only shard K of N (split by case); `xent merge` joins them")
    r.add_argument("--workers", type=int, metavar="N",
                   help="workers per framework, side by side, each taking the next case (default: the CPUs shared "
                        "among the frameworks run, for frameworks whose workers fork from a fork server: torch alone "
                        "on 2 cores gets 2; the others 1)")
    r.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="rebuild report.html from a results file")
    rep.add_argument("results", help="a results file or a run folder")
    rep.add_argument("--out")
    rep.add_argument("--reclassify", action="store_true",
                     help="classify the stored observations again under today's golden files and expectations")
    rep.add_argument("--expectations", default=str(DEFAULT_PATH))
    rep.set_defaults(func=cmd_report)

    d = sub.add_parser("diff", help="what changed between two runs (or two runtimes or devices of one run)")
    d.add_argument("old", help="results file or run folder")
    d.add_argument("new", nargs="?", help="results file or run folder")
    d.add_argument("--runtimes", nargs=2, metavar=("A", "B"),
                   help="runtime A of OLD against runtime B of NEW (or of OLD alone)")
    d.add_argument("--devices", nargs=2, metavar=("A", "B"),
                   help="device A of OLD against device B of NEW (or of OLD alone), e.g. cpu cuda:0")
    d.add_argument("--modes", nargs=2, metavar=("A", "B"),
                   help="mode A of OLD against mode B of NEW (or of OLD alone), e.g. eager compile; a row that raises "
                        "in one and returns a value in the other is 'raises'")
    d.add_argument("--backends", nargs=2, metavar=("A", "B"),
                   help="framework A of OLD against framework B of NEW (or of OLD alone) on the same API table, "
                        "e.g. keras-jax keras-torch, each in its default mode unless --modes is given; a row that "
                        "raises on one and returns a value on the other is 'raises'")
    d.add_argument("--drift", type=float, default=0.25,
                   help="on the same machine kind, a move of an output beyond this share of the tolerance is "
                        "'changed', not 'drift' (default 0.25)")
    d.add_argument("--fail-on", default="regression,missing",
                   help=f"classes that make the exit code 1, comma-separated: {', '.join(DIFF_CLASSES)} "
                        "(default regression,missing)")
    d.add_argument("--frameworks", help="only these frameworks' rows, comma-separated (a run of one framework "
                                        "against a baseline of several)")
    d.add_argument("--json", metavar="FILE", help="write the diff for machines")
    d.add_argument("--html", metavar="FILE", help="where diff.html goes (default: beside NEW)")
    d.add_argument("--reclassify", action="store_true",
                   help="classify both runs again under today's golden files, tolerance and expectations")
    d.add_argument("--expectations", default=str(DEFAULT_PATH))
    d.set_defaults(func=cmd_diff)

    dis = sub.add_parser("discover", help="search for divergences no case anticipated; write them as cases")
    dis.add_argument("--frameworks", default="torch,tensorflow,jax", help="comma-separated (default: torch,tensorflow,jax)")
    dis.add_argument("--seconds", type=float, default=600.0, help="the whole budget: search, shrink, proof (default 600)")
    dis.add_argument("--examples", type=int, metavar="N",
                     help="N examples per (framework, op) instead of a time budget: with --seed, a repeatable run")
    dis.add_argument("--seed", type=int, default=0)
    dis.add_argument("--modes", default="all", help="execution modes, comma-separated, or 'all' (default)")
    dis.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"],
                     choices=["float64", "float32", "float16", "bfloat16"])
    dis.add_argument("--ops", help="only these ops, comma-separated (default: every op)")
    dis.add_argument("--shard", metavar="K/N", help="search only shard K of N (split by framework and op)")
    dis.add_argument("--no-relations", action="store_true", help="skip the metamorphic relations")
    dis.add_argument("--out", default="reports/discover", help="where the cases, findings and replay go")
    dis.add_argument("--expectations", default=str(DEFAULT_PATH), help="the known-divergences file")
    dis.set_defaults(func=cmd_discover)

    m = sub.add_parser("merge", help="join the results of several runs (shards, CI jobs) into one")
    m.add_argument("runs", nargs="+", help="results files or run folders")
    m.add_argument("--out", required=True, help="where the merged results.parquet and report.html go")
    m.set_defaults(func=cmd_merge)

    e = sub.add_parser("env", help="cached virtual environments to run frameworks under (runtimes)")
    esub = e.add_subparsers(dest="env_command", required=True)
    ec = esub.add_parser("create", help="build an environment with uv: xent env create jax==0.9.2 optax==0.2.8")
    ec.add_argument("requirements", nargs="+")
    ec.add_argument("--name", help="the runtime's name (default: from the requirements)")
    ec.add_argument("--python", help="the Python version or interpreter (default: this one's version)")
    ec.add_argument("--uv-arg", action="append", help="passed to uv pip install (repeatable), e.g. --index-url=...")
    esub.add_parser("list", help="the environments made so far")
    e.set_defaults(func=cmd_env)

    b = sub.add_parser("baseline", help="stored runs that CI diffs against")
    bsub = b.add_subparsers(dest="baseline_command", required=True)
    bu = bsub.add_parser("update", help="accept a run as the baseline (after reading its diff)")
    bu.add_argument("source", help="results file or run folder")
    bu.add_argument("--name", default="default-cpu", help="baselines/NAME.parquet (default default-cpu)")
    b.set_defaults(func=cmd_baseline)
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("xent-conformance")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (CaseFileError, GoldenFileError, ExpectationsError, envs.EnvError, ValueError) as e:
        print(f"xent: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file that cannot be read or written (--json, --html, ...): one line, not a traceback
        print(f"xent: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
