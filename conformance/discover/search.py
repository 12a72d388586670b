"""The search: examples drawn by Hypothesis, run through the same worker, classifier and
expectations as `xent run`, kept by signature, shrunk, and proven by replay (docs/discover.md).

One Hypothesis run per (framework, mode, op): each example, in the dtype it drew, goes to every
API of the op, in one request; Hypothesis' targeted phase then climbs the share of the
tolerance (error / max(4 u cond, 1 ulp)) separately for every (API, mode, dtype, output), the
label of each `target()`. Everything that is neither `conforms` nor
`unsupported` is a finding, grouped by its `Signature`.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reference import golden, rounding

from .. import runner, verdicts
from ..expectations import Expectation, Matcher
from ..verdicts import RELATION
from ..results import ResultRow
from .relations import RELATIONS, Relation, violated
from .strategies import Example, examples

DTYPES = ("float32", "bfloat16")
SEARCH_SHARE, SHRINK_SHARE = 0.4, 0.2  # of the budget; the rest proves (replays) what was found
BORDERLINE = (1.0, 2.0)  # shares of the tolerance in which a verdict of `inaccurate` is marked borderline
# value features too common in drawn values to tell mechanisms apart (a 0 somewhere in a row)
LOOSE_FEATURES = {"value:0", "value:-0", "value:1"}
FINDING = "finding"  # a finding's kind: a verdict against the reference, or verdicts.RELATION


class Undecided(Exception):
    """The reference could not round an output of the example (rounding.RoundingUndecided)."""


class Stop(Exception):
    """The budget is spent, or the user interrupted: the search ends, what it found stays."""


@dataclass(frozen=True)
class Signature:
    """What makes two findings the same finding."""

    framework: str
    mode: str
    api: str
    dtype: str
    output: str
    verdict: str  # a classifier verdict, or "relation"
    variant: str  # the variants the output equals, or the relation's name
    cause: str  # the expectation that explains it, "" if none
    features: str  # the case's features in the dtype (reference.golden), LOOSE_FEATURES aside
    regime: str  # how its values were drawn (strategies.REGIMES)

    def catalog_key(self) -> tuple:
        """What a row of the default suite shares with it when the default suite produces it:
        everything but the regime (the search's alone); for a finding a known cause explains,
        everything but the features too (the cause names the mechanism, the features are only
        the inputs that reached it: the default suite reaching that cause on that API, mode,
        dtype and output is the same finding)."""
        if self.cause:
            return (self.framework, self.mode, self.api, self.dtype, self.output, self.verdict, self.variant,
                    self.cause)
        return (self.framework, self.mode, self.api, self.dtype, self.output, self.verdict, self.variant,
                self.cause, self.features)

    def slug(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def features_of(row_features: str) -> str:
    return ",".join(f for f in row_features.split(",") if f and f not in LOOSE_FEATURES)


def signature(row: ResultRow | dict, regime: str) -> Signature:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return Signature(get("framework"), get("mode"), get("api"), get("dtype"), get("output"), get("verdict"),
                     get("variants"), get("known"), features_of(get("features")), regime)


@dataclass
class Finding:
    signature: Signature
    kind: str  # FINDING or RELATION
    example: Example  # the smallest seen, then the shrunk one
    worst: Example  # the example with the largest share seen
    share: float  # the example's share of the tolerance (nan where it has none)
    worst_share: float
    seen: int = 1
    in_catalog: bool = False  # the default suite produces this signature too
    shrunk: str = ""  # "shrunk", "not shrunk: ...", or ""
    case_id: str = ""
    proof: dict = field(default_factory=dict)  # what the replays and the reference recomputation said
    detail: str = ""  # the verdict's detail, or what the relation compared

    @property
    def borderline(self) -> bool:
        return self.signature.verdict == verdicts.INACCURATE and BORDERLINE[0] <= self.share <= BORDERLINE[1]


def share_of(row: ResultRow) -> float:
    ratio = row.max_tol_ratio
    return float(ratio) if ratio == ratio else math.nan


class Probe:
    """One framework's worker, kept across the search's many one-case runs."""

    def __init__(self, framework: str, workdir: Path, expectations: list[Expectation],
                 runtime: runner.RuntimeSpec | None = None, timeout: float = 120.0,
                 modes: tuple[str, ...] | None = None):
        self.framework, self.workdir, self.expectations, self.timeout = framework, workdir, expectations, timeout
        self.runtime = runtime or runner.RuntimeSpec(runner.LOCAL, runner.sys.executable)
        self.worker = runner.Worker(framework, workdir / f"worker-{framework}.log", self.runtime, modes=modes)
        self.worker.launch()
        self.count = 0
        self.skipped = ""
        self._matcher: Matcher | None = None

    def hello(self):
        if self.worker.hello is None and not self.worker.ready():
            self.skipped = self.worker.message
        return self.worker.hello

    @property
    def matcher(self) -> Matcher:
        """The expectations as they apply to this framework's versions (relations are matched here)."""
        if self._matcher is None:
            self._matcher = Matcher.build(self.expectations, self.framework, self.hello().versions)
        return self._matcher

    def rows(self, example: Example, apis: set[str] | None = None, modes: tuple[str, ...] | None = None,
             case_id: str | None = None) -> list[ResultRow]:
        """The example's rows, each API (of `apis`) in each mode (of `modes`): built by the
        reference, run by the worker, classified and matched as `xent run` does."""
        self.count += 1
        folder = self.workdir / "examples" / f"{self.framework}-{self.count}"
        spec = example.spec(case_id or f"x{self.count}")
        try:
            built = golden.build_case(spec)
        except rounding.RoundingUndecided as e:  # nothing to judge against: the search says so
            raise Undecided(str(e)) from None
        golden.write_suite([built], folder, "discover",
                           {"start": rounding.START_BITS, "max": rounding.MAX_BITS})
        try:
            result = runner.run_framework(self.framework, [(str(folder), golden.load_suite(folder))],
                                          out_dir=self.workdir, timeout=self.timeout, expectations=self.expectations,
                                          worker=self.worker, use_spares=False, modes=modes, apis=apis,
                                          keep_worker=True, runtime=self.runtime)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if result.skipped or result.error:
            raise RuntimeError(f"{self.framework}: {result.skipped or result.error}")
        return [r for r in result.rows if r.api != "(no API)"]

    def close(self) -> None:
        self.worker.close()


@dataclass
class Budget:
    """Seconds or examples, and the user's stop."""

    deadline: float = math.inf
    examples: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def spent(self) -> bool:
        return self.stop.is_set() or time.monotonic() > self.deadline


class Findings:
    """Findings by signature, as the search meets them."""

    def __init__(self, catalog: set[tuple]):
        self.by_signature: dict[Signature, Finding] = {}
        self.catalog = catalog
        self.examples = 0
        self.undecided: list[Example] = []  # examples the reference could not decide (not judged)

    def add(self, sig: Signature, kind: str, example: Example, share: float, detail: str) -> None:
        found = self.by_signature.get(sig)
        if found is None:
            self.by_signature[sig] = Finding(sig, kind, example, example, share, share,
                                             in_catalog=sig.catalog_key() in self.catalog, detail=detail)
            return
        found.seen += 1
        if example.size < found.example.size:
            found.example, found.share, found.detail = example, share, detail
        if _more(share, found.worst_share):
            found.worst, found.worst_share = example, share

    def record(self, rows: list[ResultRow], example: Example) -> None:
        for row in rows:
            if row.verdict not in (verdicts.CONFORMS, verdicts.UNSUPPORTED):
                self.add(signature(row, example.regime), FINDING, example, share_of(row), row.detail)

    def all(self) -> list[Finding]:
        return list(self.by_signature.values())


def _more(a: float, b: float) -> bool:
    return (a == a) and not (b == b and b >= a)


def _stopped(e: BaseException) -> bool:
    if isinstance(e, Stop):
        return True
    return isinstance(e, BaseExceptionGroup) and any(_stopped(x) for x in e.exceptions)


def search_op(probe: Probe, op: str, modes: tuple[str, ...] | None, dtypes: tuple[str, ...], findings: Findings,
              budget: Budget, seed: int, examples_cap: int | None, relations: tuple[Relation, ...] = RELATIONS) -> int:
    """One Hypothesis run over one op's examples; returns the examples it evaluated."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings, target
    from hypothesis import seed as hypothesis_seed

    done = [0]

    def evaluate(example: Example) -> None:
        if budget.spent() or (examples_cap is not None and done[0] >= examples_cap):
            raise Stop
        try:
            rows = probe.rows(example, modes=modes)
        except Undecided:
            findings.undecided.append(example)
            reject()
        done[0] += 1
        findings.examples += 1
        findings.record(rows, example)
        for row in rows:
            share = share_of(row)
            if share == share:
                target(min(share, 1e12), label=f"{row.api} | {row.mode} | {row.dtype} | {row.output}")
        for relation in relations:
            if budget.spent() or not relation.applies(example):
                continue
            try:
                theirs = probe.rows(relation.transform(example), modes=modes)
            except Undecided:
                continue
            for sig_row, detail in violated(relation, rows, theirs, example, probe.matcher):
                findings.add(signature(sig_row, example.regime), RELATION, example, math.nan, detail)

    def run(max_examples: int) -> None:
        test = settings(max_examples=max_examples, deadline=None, database=None, derandomize=False,
                        phases=[Phase.generate, Phase.target], verbosity=Verbosity.quiet,
                        suppress_health_check=list(HealthCheck))(given(examples(op, dtypes))(evaluate))
        try:
            hypothesis_seed(seed)(test)()
        except (Stop, BaseExceptionGroup) as e:  # Hypothesis' replay of the stopped example says "flaky"
            if not _stopped(e):
                raise

    if examples_cap is not None or budget.deadline == math.inf:
        run(examples_cap or 100)
        return done[0]
    # how many examples fit: Hypothesis' targeted phase starts half-way through max_examples, so
    # a first short run (its examples count) times them, compiling what a mode compiles
    started = time.monotonic()
    run(3)
    per_example = (time.monotonic() - started) / max(done[0], 1)
    if not budget.spent():
        run(max(10, int((budget.deadline - time.monotonic()) / max(per_example, 0.001))))
    return done[0]
