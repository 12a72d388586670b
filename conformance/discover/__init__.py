"""`xent discover`: a property-based search over every op's fields that finds divergences no
case anticipated, groups them by signature, shrinks them, proves them by replay and writes
them as cases (docs/discover.md).

Phases, each within its share of the budget: search (search.py: Hypothesis, targeted at the
share of the tolerance), shrink (shrink.py), prove (here: the reference recomputed for the
written file, its fast and exact paths compared, and the file run as `xent run --cases` runs
it, in fresh workers with one and with two threads). An interrupt ends the phase in progress;
what was found is written.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import math
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from reference import golden, rounding
from reference.casefile import load_case_file, write_case_file
from reference.golden import atomic_write_bytes
from reference.ops import OPS

from .. import runner, verdicts
from ..protocol import ALL_MODES
from ..expectations import Expectation, Matcher
from .relations import RELATIONS
from .search import (DTYPES, RELATION, SEARCH_SHARE, SHRINK_SHARE, Budget, Finding, Findings, Probe, Undecided,
                     signature, search_op)
from .shrink import shrink
from .strategies import Example

CASES_FILE, FINDINGS_FILE, SUMMARY_FILE = "discovered.toml", "findings.json", "findings.md"
THREADS = (1, 2)  # a finding holds with each, replayed in fresh workers


@dataclass
class Options:
    frameworks: list[str]
    out: Path
    seconds: float | None = 600.0
    examples: int | None = None  # per (framework, op): a repeatable run
    seed: int = 0
    modes: tuple[str, ...] | None = ("all",)
    dtypes: tuple[str, ...] = DTYPES
    ops: tuple[str, ...] = tuple(OPS)
    shard: tuple[int, int] = (1, 1)
    relations: bool = True
    expectations: list[Expectation] = field(default_factory=list)
    catalog: set = field(default_factory=set)  # Signature.catalog_key() of the default suite's rows


@dataclass
class Outcome:
    findings: list[Finding]
    examples: dict[str, int]  # per "framework mode"
    undecided: int
    seconds: dict[str, float]  # per phase
    interrupted: bool
    skipped: dict[str, str]  # framework -> why it did not run
    versions: dict[str, dict]


def unit_in_shard(framework: str, op: str, shard: tuple[int, int]) -> bool:
    k, n = shard
    digest = hashlib.sha256(f"{framework}/{op}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n == k - 1


def _seed(seed: int, framework: str, op: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{framework}/{op}".encode()).digest()[:4], "big")


def catalog_keys(paths) -> set:
    """The signatures (less the regime) the default suite produces, from stored runs."""
    import pandas as pd
    keys = set()
    for path in paths:
        if not Path(path).exists():
            continue
        columns = ["framework", "mode", "api", "dtype", "output", "verdict", "variants", "known", "features"]
        df = pd.read_parquet(path, columns=columns)
        df = df[~df["verdict"].isin([verdicts.CONFORMS, verdicts.UNSUPPORTED])]
        for row in df.to_dict("records"):
            keys.add(signature(row, "").catalog_key())
    return keys


def discover(opts: Options, progress=None, stop=None) -> Outcome:
    """Search, shrink, write, prove; `progress(phase, fraction)`; `stop`: a threading.Event."""
    started = time.monotonic()
    budget = Budget(stop=stop) if stop is not None else Budget()
    seconds = opts.seconds if opts.examples is None else None
    total_end = started + seconds if seconds else math.inf
    opts.out.mkdir(parents=True, exist_ok=True)
    work = opts.out / "work"
    work.mkdir(exist_ok=True)
    findings = Findings(opts.catalog)
    probes = {f: Probe(f, work, opts.expectations, modes=opts.modes) for f in opts.frameworks}  # they import side by side
    skipped, versions, done, hellos = {}, {}, {}, {}
    stopped: dict[str, str] = {}  # framework -> why its search ended early (a worker that no longer starts)
    phase_seconds = {}
    try:
        units = []
        for framework, probe in probes.items():
            hello = probe.hello()
            if hello is None:
                skipped[framework] = probe.skipped
                continue
            versions[framework] = hello.versions
            hellos[framework] = hello
            ops = {a.op for a in hello.apis}
            modes = runner.chosen_modes(hello.mode_names(), opts.modes)
            units += [(framework, mode, op) for mode in modes for op in opts.ops
                      if op in ops and unit_in_shard(framework, op, opts.shard)]
        offered = {m for p in probes.values() if p.worker.hello for m in p.worker.hello.mode_names()}
        unknown = [m for m in opts.modes or () if m != ALL_MODES and m not in offered]
        if unknown and offered:  # a typo must not pass for a search that ran nothing
            raise ValueError(f"--modes: no framework has a mode {unknown[0]!r} (modes: {', '.join(sorted(offered))})")
        search_end = started + seconds * SEARCH_SHARE if seconds else math.inf
        # one unit per (framework, mode, op), each its equal share of what is left: an eager mode
        # sees many examples, a compiled one fewer (a new graph compiles), neither starves the other
        for i, (framework, mode, op) in enumerate(units):
            if budget.stop.is_set():
                break
            now = time.monotonic()
            budget.deadline = now + (search_end - now) / (len(units) - i) if seconds else math.inf
            before = findings.examples
            if framework in stopped:
                continue
            try:
                search_op(probes[framework], op, (mode,), opts.dtypes, findings, budget,
                          _seed(opts.seed, f"{framework}/{mode}", op), opts.examples, RELATIONS if opts.relations else ())
            except Exception as e:  # noqa: BLE001 (the framework stops; what every framework found stays)
                stopped[framework] = f"stopped early ({mode}, {op}): {type(e).__name__}: {str(e)[:300]}"
            done[f"{framework} {mode}"] = done.get(f"{framework} {mode}", 0) + findings.examples - before
            if progress:
                progress("search", (i + 1) / len(units))
        phase_seconds["search"] = time.monotonic() - started
        _write(opts, findings, versions, partial=True)

        shrink_started = time.monotonic()
        shrink_end = shrink_started + seconds * SHRINK_SHARE if seconds else math.inf
        to_shrink = sorted((f for f in findings.all() if not f.in_catalog and f.signature.framework in probes),
                           key=_order)
        shrunk: dict[str, Example] = {}  # an example's table -> what it shrank to (API aliases share examples)
        for i, finding in enumerate(to_shrink):
            if budget.stop.is_set():
                break
            now = time.monotonic()
            budget.deadline = now + (shrink_end - now) / (len(to_shrink) - i) if seconds else math.inf
            key = json.dumps(finding.example.table("_"), sort_keys=True)
            if finding.signature.framework in stopped:
                continue
            try:
                _shrink(probes[finding.signature.framework], finding, budget, shrunk.get(key))
            except Exception as e:  # noqa: BLE001 (its example stays as found, not shrunk)
                stopped[finding.signature.framework] = f"stopped while shrinking: {type(e).__name__}: {str(e)[:300]}"
                continue
            shrunk.setdefault(key, finding.example)
            if progress:
                progress("shrink", (i + 1) / len(to_shrink))
        phase_seconds["shrink"] = time.monotonic() - shrink_started
    finally:
        for probe in probes.values():
            probe.close()
    written = _write(opts, findings, versions, partial=True)
    prove_started = time.monotonic()
    if written and not budget.stop.is_set():
        _prove(opts, findings.all(), budget, total_end, versions, progress)
        _relation_reproducers(opts, findings.all(), hellos)
    phase_seconds["prove"] = time.monotonic() - prove_started
    _write(opts, findings, versions, partial=budget.stop.is_set())
    outcome = Outcome(findings.all(), done, len(findings.undecided), phase_seconds, budget.stop.is_set(),
                      {**skipped, **stopped}, versions)
    _summary(opts, outcome)
    return outcome


def _holds(probe: Probe, finding: Finding):
    sig = finding.signature
    relation = next((r for r in RELATIONS if r.name == sig.variant), None) if finding.kind == RELATION else None

    def holds(example: Example) -> bool:
        try:
            rows = probe.rows(example, apis={sig.api}, modes=(sig.mode,))
            if relation is None:
                return any(signature(r, sig.regime) == sig for r in rows)
            if not relation.applies(example):
                return False
            from .relations import violated
            theirs = probe.rows(relation.transform(example), apis={sig.api}, modes=(sig.mode,))
            return any(signature(r, sig.regime) == sig for r, _ in violated(relation, rows, theirs, example, probe.matcher))
        except Undecided:
            return False

    return holds


def _shrink(probe: Probe, finding: Finding, budget: Budget, hint: Example | None = None) -> None:
    """Shrink a finding's example; `hint`: what an identical example shrank to for another
    signature, tried first (an API's alias fails the same way)."""
    holds = _holds(probe, finding)
    start = hint if hint is not None and holds(hint) else finding.example
    small, tries, finished = shrink(start, holds, budget.spent)
    finding.example = small
    finding.shrunk = f"shrunk ({tries} tries)" if finished else f"shrinking stopped by the budget ({tries} tries)"
    if small is not finding.worst:
        rows = [r for r in probe.rows(small, apis={finding.signature.api}, modes=(finding.signature.mode,))
                if signature(r, finding.signature.regime) == finding.signature] if finding.kind != RELATION else []
        if rows:
            finding.share, finding.detail = rows[0].max_tol_ratio, rows[0].detail


def _written_findings(findings: list[Finding]) -> list[Finding]:
    """One case per signature the default suite does not produce."""
    return [f for f in findings if not f.in_catalog]


def _order(f: Finding) -> tuple:
    """Unexplained first, then relations, then what a known cause explains; then by seen count."""
    return (f.signature.cause != "", f.kind != RELATION, -f.seen, f.signature.framework, f.signature.api)


def _case_id(finding: Finding) -> str:
    return f"discover-{OPS[finding.example.op].short or finding.example.op}-{finding.signature.slug()}"


def _write(opts: Options, found: Findings, versions: dict, partial: bool) -> dict[str, Finding]:
    """The case file (one case per new signature; an identical example shared; the worst witness
    beside it) and findings.json; returns case id -> finding."""
    findings = found.all()
    specs, comments, by_case, tables = [], {}, {}, {}
    today = datetime.date.today().isoformat()
    for finding in sorted(_written_findings(findings), key=_order):
        sig = finding.signature
        key = json.dumps(finding.example.table("_"), sort_keys=True)
        case_id = tables.get(key)
        if case_id is None:
            case_id = tables[key] = _case_id(finding)
            tags = ("discover", sig.regime, finding.kind)
            specs.append(replace(finding.example, tags=tags).spec(case_id))
            comments[case_id] = ""
            if finding.kind == RELATION:
                relation = next(r for r in RELATIONS if r.name == sig.variant)
                specs.append(replace(relation.transform(finding.example), tags=tags + ("relation-twin",))
                             .spec(f"{case_id}.{relation.name}"))
                comments[f"{case_id}.{relation.name}"] = f"the other side of {case_id}'s {relation.name} relation"
            if finding.worst is not finding.example and finding.kind != RELATION:
                worst = json.dumps(finding.worst.table("_"), sort_keys=True)
                if worst not in tables:
                    tables[worst] = f"{case_id}.worst"
                    specs.append(replace(finding.worst, tags=tags + ("worst-witness",)).spec(f"{case_id}.worst"))
                    comments[f"{case_id}.worst"] = f"the worst witness of {case_id} (share {finding.worst_share:.3g})"
        finding.case_id = case_id
        by_case.setdefault(case_id, finding)
        share = f"{finding.share:.3g}" if finding.share == finding.share else "-"
        comments[case_id] += (
            f"signature {sig.slug()}: {sig.framework} {sig.mode} {sig.api} {sig.dtype} {sig.output}: {sig.verdict}"
            f"{' (' + sig.variant + ')' if sig.variant else ''}; cause: {sig.cause or 'not yet explained'}\n"
            f"  features {sig.features}; regime {sig.regime}; share {share}{' (borderline)' if finding.borderline else ''}; "
            f"seen {finding.seen}x; {finding.shrunk or 'not shrunk'}\n")
    header = (f"Cases written by xent discover on {today}: one per signature the default suite does not produce.\n"
              f"seed {opts.seed}; frameworks {', '.join(opts.frameworks)}; modes {','.join(opts.modes or ('default',))}; "
              f"dtypes {', '.join(opts.dtypes)}\n"
              + "".join(f"{fw}: {', '.join(f'{k} {v}' for k, v in sorted(vs.items()))}\n" for fw, vs in versions.items())
              + ("(partial: written before the search finished)\n" if partial else "")
              + "Run them: xent run --cases THIS_FILE --frameworks ... --modes all")
    if specs:
        write_case_file(specs, opts.out / CASES_FILE, header, comments)
    records = [dict(asdict(f.signature), kind=f.kind, in_catalog=f.in_catalog, seen=f.seen,
                    share=None if f.share != f.share else f.share,
                    worst_share=None if f.worst_share != f.worst_share else f.worst_share,
                    borderline=f.borderline, shrunk=f.shrunk, case_id=f.case_id, proof=f.proof, detail=f.detail,
                    slug=f.signature.slug()) for f in findings]
    undecided = [e.table(f"undecided-{i}") for i, e in enumerate(found.undecided[:10])]
    atomic_write_bytes(opts.out / FINDINGS_FILE, (json.dumps(
        {"partial": partial, "seed": opts.seed, "versions": versions, "findings": records,
         "undecided": {"count": len(found.undecided), "first": undecided}}, indent=1) + "\n").encode())
    return by_case


def _thread_env(n: int) -> tuple[tuple[str, str], ...]:
    import os
    env = {"OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n), "TF_NUM_INTRAOP_THREADS": str(n)}
    if n == 1:  # XLA's CPU backend: no Eigen thread pool
        env["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS", ""), "--xla_cpu_multi_thread_eigen=false"]))
    return tuple(env.items())


def _prove(opts: Options, findings: list[Finding], budget: Budget, end: float, versions: dict, progress=None) -> None:
    """The written file as a user would run it: the reference recomputed (fast and exact paths
    compared where the fast path decides), then `xent run --cases` in fresh workers, once per
    thread count, each framework on the cases and in the modes of its findings (side by side),
    until `end`; a finding stands when every replay gives its signature."""
    from ..cli import _finish
    from ..report import results_frame
    from ..results import Run, RunInfo
    specs = load_case_file(opts.out / CASES_FILE)
    agree, built = {}, []
    for spec in specs:  # each case's golden file once, by the exact path, and the fast path's where it decides
        agree[spec.id], exact = golden.paths_agree(spec, keep_exact=True)
        built.append(exact)
    suite = golden.write_suite(built, opts.out / "golden", "discovered",
                               {"start": rounding.START_BITS, "max": rounding.MAX_BITS}, force=True)
    written = [f for f in findings if f.case_id]
    plan: dict[str, tuple[set, set]] = {}
    for f in written:
        ids, modes = plan.setdefault(f.signature.framework, (set(), set()))
        ids.update(s.id for s in specs if s.id == f.case_id or s.id.startswith(f.case_id + "."))
        modes.add(f.signature.mode)
    for f in written:
        f.proof = {"reference_paths": {None: "exact path only", True: "fast and exact agree",
                                       False: "FAST AND EXACT DIFFER"}[agree.get(f.case_id)]}
    control = runner.Control()
    timer = threading.Timer(max(0.0, end - time.monotonic()), control.request_stop)
    timer.daemon = True
    timer.start()
    watcher = threading.Thread(target=lambda: budget.stop.wait() and control.request_stop(), daemon=True)
    watcher.start()
    last: list = []
    try:
        for threads in THREADS:
            rt = runner.RuntimeSpec(runner.LOCAL, sys.executable, _thread_env(threads))
            rows: list = []
            jobs = [threading.Thread(target=lambda fw=fw, ids=ids, modes=modes: rows.extend(
                        r for run in runner.run([suite.parent], [fw], out_dir=opts.out / "work", runtimes=[rt],
                                                expectations=opts.expectations, case_ids=ids, modes=tuple(sorted(modes)),
                                                use_spares=False, control=control) for r in run.rows))
                    for fw, (ids, modes) in plan.items()]
            for job in jobs:
                job.start()
            for job in jobs:
                job.join()
            by_case: dict[str, list] = {}
            for r in rows:
                by_case.setdefault(r.case_id, []).append(r)
            key = f"replay_{threads}_thread{'s' if threads > 1 else ''}"
            matchers = {fw: Matcher.build(opts.expectations, fw, versions.get(fw, {})) for fw in plan}
            for f in written:
                f.proof[key] = _replayed(f, by_case, matchers[f.signature.framework])
            if progress:
                progress("prove", (THREADS.index(threads) + 1) / len(THREADS))
            last = rows
    finally:
        timer.cancel()
    if last:
        replay = opts.out / "replay"
        replay.mkdir(exist_ok=True)
        _finish(Run(results_frame(last), RunInfo()), replay)


def _replayed(f: Finding, by_case: dict[str, list], matcher: Matcher) -> str:
    sig = f.signature
    mine = [r for r in by_case.get(f.case_id, []) if (r.api, r.mode) == (sig.api, sig.mode)]
    if not mine:
        return "not replayed: the budget was spent"
    if f.kind == RELATION:
        from .relations import violated
        relation = next(r for r in RELATIONS if r.name == sig.variant)
        theirs = [r for r in by_case.get(f"{f.case_id}.{relation.name}", []) if (r.api, r.mode) == (sig.api, sig.mode)]
        if not theirs:
            return "not replayed: the budget was spent"
        got = violated(relation, mine, theirs, f.example, matcher)
        ok = any(signature(r, sig.regime) == sig for r, _ in got)
    else:
        ok = any(signature(r, sig.regime) == sig for r in mine)
    return "reproduced" if ok else "NOT REPRODUCED"


RELATION_SCRIPT = '''"""Relation reproducer (xent-conformance): {about}.

{framework} {api}, {dtype}, mode {mode}: case {a} (the batch) against case {b}. Runs the two
reproducers beside this file (each also prints its outputs against the correctly rounded
reference) and compares the rows' bits: run it where {framework} is installed."""
import contextlib
import io
import os
import runpy

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def outputs(name):
    with contextlib.redirect_stdout(io.StringIO()):
        ns = runpy.run_path(os.path.join(HERE, name))
    return {{o: np.asarray(ns["bits_of"](ns[o])) for o in ("loss", "grad")}}


batch, other = outputs({file_a!r}), outputs({file_b!r})
differ = 0
for output in ("loss", "grad"):
    for i, j in zip({mine}, {theirs}):
        same = np.array_equal(batch[output][i], other[output][j])
        differ += not same
        print(f"{{output}}: row {{i}} of the batch against row {{j}} of the other: "
              f"{{'same bits' if same else 'DIFFERENT bits'}}  {{batch[output][i].tolist()}} / {{other[output][j].tolist()}}")
print("the relation holds" if not differ else f"the relation does not hold: {{differ}} rows differ in their bits")
'''


def _relation_reproducers(opts: Options, findings: list[Finding], hellos: dict) -> None:
    """A relation finding's reproducer: the two cases' reproducers (repro.script, as a run writes
    them) and a script that runs both and compares the rows, under replay/repro/relations/."""
    from .. import repro
    rows_path = opts.out / "replay" / "results.parquet"
    if not rows_path.exists():
        return
    from ..report import read_results
    tasks: dict[tuple, list] = {}  # (case, api, mode, dtype) -> its loss and grad rows
    for r in read_results(rows_path).itertuples(index=False):
        tasks.setdefault((r.case_id, r.api, r.mode, r.dtype), []).append(r)
    cases = {c.id: c for c in golden.load_suite(opts.out / "golden")}
    for f in (f for f in findings if f.kind == RELATION and f.case_id and stable(f)):
        sig, hello = f.signature, hellos.get(f.signature.framework)
        relation = next(r for r in RELATIONS if r.name == sig.variant)
        twin = f"{f.case_id}.{relation.name}"
        api = next((a for a in hello.apis if a.name == sig.api), None) if hello else None
        mode = next((m for m in hello.modes if m.name == sig.mode), None) if hello else None
        if api is None or api.recipe is None or mode is None or twin not in cases:
            continue
        stem = f"{repro._slug(f.case_id)}--{repro._slug(sig.api)}--{sig.dtype}--{repro._slug(sig.mode)}"
        folder = opts.out / "replay" / repro.FOLDER / "relations" / repro._slug(sig.framework)
        names = {}
        for side, case_id in (("batch", f.case_id), ("other", twin)):
            rows = tasks.get((case_id, sig.api, sig.mode, sig.dtype), [])
            if len(rows) != 2:
                break
            device = next((d.id for d in hello.devices if d.label == rows[0].device), None)
            text, _ = repro.script(api.recipe, api.layout(), cases[case_id], cases[case_id].arrays(), sig.dtype, device,
                                   sorted(rows, key=lambda r: r.output != "loss"), mode.repro)
            names[side] = f"{stem}--{side}.py"
            atomic_write_bytes(folder / names[side], text.encode())
        if len(names) == 2:
            mine, theirs = relation.pairs(f.example)
            atomic_write_bytes(folder / f"{stem}.py", RELATION_SCRIPT.format(
                about=relation.about, framework=sig.framework, api=sig.api, dtype=sig.dtype, mode=sig.mode,
                a=f.case_id, b=twin, file_a=names["batch"], file_b=names["other"], mine=mine, theirs=theirs).encode())
            f.proof["reproducer"] = f"replay/{repro.FOLDER}/relations/{repro._slug(sig.framework)}/{stem}.py"


PROOF_KEYS = ("reference_paths",) + tuple(f"replay_{n}_thread{'s' if n > 1 else ''}" for n in THREADS)


def stable(finding: Finding) -> bool:
    return all(finding.proof.get(k) in ("reproduced", "fast and exact agree", "exact path only") for k in PROOF_KEYS)


def disproved(finding: Finding) -> bool:
    """Replayed and not reproduced, or a reference whose two paths disagree: a false alarm."""
    return any(finding.proof.get(k) in ("NOT REPRODUCED", "FAST AND EXACT DIFFER") for k in PROOF_KEYS)


def _summary(opts: Options, outcome: Outcome) -> None:
    """findings.md: the findings by signature, new ones first."""
    from ..repro import file_name
    lines = [f"# xent discover: {len(outcome.findings)} signatures",
             "", f"Examples: {', '.join(f'{k} {v}' for k, v in outcome.examples.items())}; "
                 f"undecided by the reference (not judged): {outcome.undecided}; phases: "
                 + ", ".join(f"{k} {v:.0f} s" for k, v in outcome.seconds.items())
                 + ("; INTERRUPTED" if outcome.interrupted else ""), ""]
    for framework, why in outcome.skipped.items():
        lines.append(f"- skipped {framework}: {why}")
    order = sorted(outcome.findings, key=lambda f: (f.in_catalog, f.signature.cause != "", f.signature.framework,
                                                     f.signature.api, f.signature.mode, f.signature.dtype))
    lines += ["", "| new | cause | framework | mode | API | dtype | output | verdict | features | regime | seen | share | case | proof |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in order:
        s = f.signature
        verdict = s.verdict + (f" ({s.variant})" if s.variant else "") + (" borderline" if f.borderline else "")
        share = f"{f.share:.3g}" if f.share == f.share else ""
        proof = ("stable" if stable(f) else "; ".join(f"{k}: {v}" for k, v in f.proof.items())) if f.proof else ""
        repro = f" [repro]({f.proof['reproducer']})" if f.proof.get("reproducer") else ""
        if f.case_id and f.kind != RELATION:
            row = {"runtime": "local", "framework": s.framework, "mode": s.mode, "case_id": f.case_id, "api": s.api,
                   "dtype": s.dtype, "device": "cpu"}
            if (opts.out / "replay" / file_name(row)).exists():
                repro = f" [repro](replay/{file_name(row)})"
        lines.append(f"| {'' if f.in_catalog else 'new'} | {s.cause or 'not yet explained'} | {s.framework} | {s.mode} | "
                     f"`{s.api}` | {s.dtype} | {s.output} | {verdict} | {s.features} | {s.regime} | {f.seen} | {share} | "
                     f"{f.case_id}{repro} | {proof} |")
    atomic_write_bytes(opts.out / SUMMARY_FILE, ("\n".join(lines) + "\n").encode())
