"""The conformance matrix as a pytest plugin (entry point `pytest11`: xent).

One test per (framework or framework@runtime, case), named `<framework>-<case id>` (with
`--xent-runtime`: `<framework>@<runtime>-<case id>`), so `-k` selects; one per (expectation,
framework) where its staleness can be judged (some of the cases that witnessed it in the
reference run, the baseline, are among the suites), failing with "expectation X no longer
matches: the framework changed" when its witnesses ran and it explained nothing; one per
framework against a stored baseline when `--xent-baseline` is given. A (framework, case) test
fails on a divergence the expectations file does not explain, is an xfail naming the causes
when every divergence is known, and is skipped, with the reasons, when no API of the framework
can express the case.

A selection runs only what it selects: the first test of a framework runs that framework's
worker over the selected cases only, once, and every test of the framework reads its rows.
A framework's tests sit under `xent::<framework>`, and under `-n` the plugin turns pytest-xdist's
default `--dist load` into `--dist loadscope`, so each framework runs in one xdist worker.

It joins a plain `pytest` when `xent_suites` or `xent_cases` is set in the ini file (and no test
paths are named on the command line), or whenever an `--xent-*` option is given.
"""
from __future__ import annotations

import hashlib
import shlex
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

OPTIONS = {  # option -> (ini name, help)
    "--xent-cases": ("xent_cases", "case files (TOML) to run"),
    "--xent-suite": ("xent_suites", "stored suites to run (default, large, peer); default: default, unless --xent-cases"),
    "--xent-frameworks": ("xent_frameworks", "frameworks, comma-separated (default: all that are installed)"),
    "--xent-runtime": ("xent_runtimes", "runtimes NAME[=PYTHON] (xent env create builds them; default: local)"),
    "--xent-dtypes": ("xent_dtypes", "dtypes, comma-separated (default: every dtype of each case)"),
    "--xent-modes": ("xent_modes", "execution modes, comma-separated, or 'all' (default: each framework's default)"),
    "--xent-expectations": ("xent_expectations", "the expectations file (default: the package's)"),
    "--xent-baseline": ("xent_baseline", "a results file or run folder the run must equal (write "
                                         "--xent-baseline=PATH: pytest reads a separate PATH as a test path)"),
    "--xent-out": ("xent_out", "where results.parquet, report.html and repro/ go (default: under pytest's basetemp)"),
}


def pytest_addoption(parser):
    group = parser.getgroup("xent", "xent-conformance: the cross-entropy conformance matrix")
    for option, (ini, text) in OPTIONS.items():
        if option in ("--xent-cases", "--xent-suite", "--xent-runtime"):
            group.addoption(option, nargs="+", default=None, help=text)
        else:
            group.addoption(option, default=None, help=text)
        parser.addini(ini, text, type="args" if ini in ("xent_cases", "xent_suites", "xent_runtimes") else "string")


def _setting(config, option: str):
    """The command line's value, else the ini file's (with its paths relative to the ini file)."""
    value = config.getoption(option.lstrip("-").replace("-", "_"))
    if value is not None:
        return value
    ini_name = OPTIONS[option][0]
    value = config.getini(ini_name)
    if not value:
        return None
    base = Path(config.inipath).parent if config.inipath else Path.cwd()
    if ini_name in ("xent_cases",):
        return [str(base / v) for v in value]
    if ini_name in ("xent_expectations", "xent_baseline", "xent_out"):
        return str(base / value)
    return value


def _active(config) -> bool:
    given = any(config.getoption(o.lstrip("-").replace("-", "_")) is not None for o in OPTIONS)
    configured = bool(config.getini("xent_suites") or config.getini("xent_cases"))
    return given or (configured and config.args_source != pytest.Config.ArgsSource.ARGS)


@dataclass
class Matrix:
    """What the plugin knows for a session: the suites, and each framework's rows once it ran."""

    suite_dirs: list[Path]
    frameworks: list[str]
    runtimes: list  # runner.RuntimeSpec
    dtypes: set[str] | None
    expectations: list
    baseline: str | None
    witnesses: object  # expectations.Witnesses: what can be judged stale
    out: Path
    cases: dict[str, list[str]]  # suite folder -> case ids
    modes: tuple[str, ...] | None = None  # runner.chosen_modes
    runs: dict = field(default_factory=dict)  # label -> runner.FrameworkRun
    frames: dict = field(default_factory=dict)  # label -> its rows as a results frame
    by_case: dict = field(default_factory=dict)  # (label, suite name, case id) -> its rows
    selected: dict = field(default_factory=dict)  # label -> case ids its tests selected

    def who(self) -> list[tuple[str, object, str]]:
        """(framework, runtime, label) for each framework under each runtime; the label names
        its tests and folders: the framework alone under the local runtime, else framework@runtime."""
        return [(f, rt, f if rt.name == "local" else f"{f}@{rt.name}") for rt in self.runtimes for f in self.frameworks]

    def run(self, framework: str, runtime, label: str):
        """One framework under one runtime over the selected cases (once per session and process)."""
        if label not in self.runs:
            from . import report, repro, runner

            out = self.out / label
            out.mkdir(parents=True, exist_ok=True)
            (found,) = runner.run(self.suite_dirs, [framework], out_dir=out, expectations=self.expectations,
                                  dtypes=self.dtypes, runtimes=[runtime], case_ids=self.selected.get(label, set()),
                                  witnesses=self.witnesses, modes=self.modes)
            self.runs[label] = found
            for row in found.rows:
                self.by_case.setdefault((label, row.suite, row.case_id), []).append(row)
            if found.rows:
                df = self.frames[label] = report.results_frame(found.rows)
                report.write_results(df, out / "results.parquet")
                repro.write_files(df, out)
                report.write_report(df, out / "report.html")
        found = self.runs[label]
        if found.available_modes and not found.modes and not found.unavailable:  # a typo must not skip every test quietly
            pytest.fail(f"--xent-modes: {found.skipped}", pytrace=False)
        if found.skipped:
            pytest.skip(f"{label} did not run: {found.skipped}")
        return found

    def rows(self, framework: str, runtime, label: str, suite: str, case_id: str) -> list:
        self.run(framework, runtime, label)
        return self.by_case.get((label, Path(suite).name, case_id), [])


KEY = pytest.StashKey[Matrix]()


def _comma(value) -> list[str]:
    return [v.strip() for v in str(value).split(",") if v.strip()] if value else []


@pytest.hookimpl(trylast=True)  # after pytest's tmp_path plugin has set up the basetemp
def pytest_configure(config):
    config.addinivalue_line("markers", "xent: a test of the xent-conformance matrix")
    config.addinivalue_line("markers", "slow: takes more than a few seconds (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist runs a group in one worker")
    if not _active(config):
        return
    # each framework in one xdist worker, so its tests share one run: xdist's default `load` becomes
    # `loadscope`, and a framework's tests share the scope xent::<framework> (pytest 9.2's
    # structured node ids leave xdist 3.8's `loadgroup` suffixes out, so groups alone do not hold)
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadscope"
    from reference.casefile import load_case_files
    from reference.golden import load_suite

    from . import envs
    from .adapters import FRAMEWORKS
    from .expectations import DEFAULT_PATH, load_expectations, witnesses_for
    from .suites import SUITES, cache_dir, results_path

    case_files = _setting(config, "--xent-cases") or []
    suites = _setting(config, "--xent-suite") or ([] if case_files else ["default"])
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise pytest.UsageError(f"--xent-suite {unknown[0]}: choose from {', '.join(sorted(SUITES))}")
    frameworks = _comma(_setting(config, "--xent-frameworks")) or list(FRAMEWORKS)
    wrong = [f for f in frameworks if f not in FRAMEWORKS]
    if wrong:
        raise pytest.UsageError(f"--xent-frameworks {wrong[0]}: choose from {', '.join(FRAMEWORKS)}")
    expectations_path = _setting(config, "--xent-expectations") or str(DEFAULT_PATH)
    baseline = _setting(config, "--xent-baseline")
    try:
        runtimes = [envs.resolve(spec) for spec in _setting(config, "--xent-runtime") or ["local"]]
        expectations = load_expectations(expectations_path, FRAMEWORKS)
        specs = load_case_files(case_files) if case_files else []
        if baseline and not results_path(baseline).exists():
            raise ValueError(f"--xent-baseline {baseline}: no results file there")
        witnesses = witnesses_for(baseline)  # which cases witnessed each expectation
    except ValueError as e:  # one clear error naming the file, the case or entry, and the field
        raise pytest.UsageError(str(e)) from None
    suite_dirs = [SUITES[s][1] for s in suites]
    if specs:
        suite_dirs.append(_user_golden(config, specs, case_files, cache_dir()))
    out = _setting(config, "--xent-out")
    if out is None:
        worker = getattr(config, "workerinput", {}).get("workerid", "main")
        out = Path(config._tmp_path_factory.getbasetemp()) / f"xent-{worker}"
    try:
        cases = {str(d): [c.id for c in load_suite(d)] for d in suite_dirs}
    except Exception as e:  # a suite not generated yet: load_suite names the command
        raise pytest.UsageError(str(e)) from None
    config.stash[KEY] = Matrix(suite_dirs, frameworks, runtimes, set(_comma(_setting(config, "--xent-dtypes"))) or None,
                               expectations, baseline, witnesses, Path(out), cases,
                               tuple(_comma(_setting(config, "--xent-modes"))) or None)


def _user_golden(config, specs, case_files, cache: Path) -> Path:
    """User cases' golden files, generated once per content into the user cache; under xdist the
    controller generates them before any worker starts, and the workers find them there."""
    from reference.golden import generate, load_suite

    digest = hashlib.sha256(b"".join(Path(f).read_bytes() for f in sorted(case_files))).hexdigest()[:16]
    golden = cache / "pytest" / digest / "user"
    if not hasattr(config, "workerinput"):
        try:
            load_suite(golden)
        except Exception:
            generate(specs, golden, "user", force=True)
    return golden


class XentDrift(UserWarning):
    """Outputs whose bits moved against the baseline within the same verdict, variant, error and
    cause (another CPU's vector ISA, another GPU): reported, not a failure."""


class XentFailure(AssertionError):
    """A failure whose message is the whole report (no Python traceback)."""


class _Item(pytest.Item):
    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, XentFailure):
            return str(excinfo.value)
        if excinfo.errisinstance(pytest.xfail.Exception):
            # a known divergence: pytest shows only the reason, yet would first format a traceback
            # with the source of every frame (about 0.2 s an xfail, a third of the matrix's time)
            return excinfo.value.msg
        return super().repr_failure(excinfo)


class _WhoItem(_Item):
    """A test of one framework under one runtime (`label`)."""

    def __init__(self, *, framework: str, runtime, label: str, **kwargs):
        super().__init__(**kwargs)
        self.framework, self.runtime, self.label = framework, runtime, label


class XentItem(_WhoItem):
    def __init__(self, *, case_id: str, suite: str, **kwargs):
        super().__init__(**kwargs)
        self.case_id, self.suite = case_id, suite

    def runtest(self):
        from .adapters import missing_module
        from .matrix import check
        from .verdicts import UNSUPPORTED

        missing = missing_module(self.framework)
        if missing:
            pytest.skip(f"{self.framework} is not installed (no module {missing!r})")
        matrix = self.config.stash[KEY]
        rows = matrix.rows(self.framework, self.runtime, self.label, self.suite, self.case_id)
        if not rows:
            raise AssertionError(f"no results for {self.label} on {self.case_id}")
        if all(r.verdict == UNSUPPORTED for r in rows):  # nothing was checked: not a pass
            reasons = sorted({r.detail for r in rows})
            pytest.skip(f"no API of {self.label} can express {self.case_id}: " + "; ".join(reasons)[:600])
        failure = check([vars(r) for r in rows], matrix.out / self.label)
        if failure:
            raise XentFailure(failure)
        _skip_if_modes_unchecked(matrix.runs[self.label], f"{self.label} {self.case_id}")

    def reportinfo(self):
        return self.path, None, f"xent {self.label} {self.case_id}"


def _skip_if_modes_unchecked(found, what: str) -> None:
    """A mode asked for that could not run here was not checked: what ran passed, the test is no pass."""
    if found.unavailable:
        pytest.skip(f"{what}: {', '.join(found.modes)} passed; not checked: "
                    + "; ".join(f"mode {m} cannot run here ({why})" for m, why in found.unavailable.items()))


class ExpectationItem(_WhoItem):
    def __init__(self, *, entry, **kwargs):
        super().__init__(**kwargs)
        self.entry = entry

    def runtest(self):
        from .expectations import stale_message

        matrix = self.config.stash[KEY]
        found = matrix.run(self.framework, self.runtime, self.label)
        if self.entry.id not in found.witnessed:
            pytest.skip(f"none of the cases that showed {self.entry.id} in {matrix.witnesses.source} ran "
                        f"(a selection, or other dtypes): its staleness cannot be judged")
        if self.entry.id in found.stale:
            raise XentFailure(stale_message([self.entry.id]) + f" ({self.label} {found.version})")

    def reportinfo(self):
        return self.path, None, f"xent expectation {self.entry.id} on {self.label}"


class BaselineItem(_WhoItem):
    def runtest(self):
        from . import diff, report

        matrix = self.config.stash[KEY]
        found = matrix.run(self.framework, self.runtime, self.label)
        current = report.results_frame(found.rows)
        baseline = report.read_results(diff.results_path(matrix.baseline))
        # a runtime the baseline holds is compared with itself; else with the baseline's one runtime
        # of this framework (a new version against the stored run of the old one)
        held = set(baseline.loc[baseline["framework"] == self.framework, "runtime"])
        if self.runtime.name not in held and len(held) == 1:
            baseline, current = baseline.assign(runtime="*"), current.assign(runtime="*")
        # the baseline's rows of what this selection ran: the same framework, cases, dtypes, modes, devices
        baseline = baseline[(baseline["framework"] == self.framework)
                            & baseline["case_id"].isin(set(current["case_id"]))
                            & baseline["mode"].isin(found.modes)
                            & baseline["dtype"].isin(set(current["dtype"]))
                            & baseline["device"].isin(set(baseline["device"]) & (set(current["device"]) | {"-"}))]
        current = current[current["device"].isin(set(baseline["device"]) | {"-"})]
        if baseline.empty:  # the baseline's rows of the cases this run ran: none, nothing to compare
            pytest.skip(f"nothing compared: no case of {self.label} ran that the baseline holds "
                        f"({current['case_id'].nunique()} cases ran)")
        d = diff.compare(baseline, current, old_label=str(matrix.baseline), new_label="this run")
        if diff.failed(d, diff.BASELINE_FAILS):
            raise XentFailure(diff.summary_text(d) + "\nread the diff, then accept it: xent run --out NEW && "
                              "xent baseline update NEW")
        if d.counts()["drift"]:  # reported, not failed: another machine kind moves last bits
            warnings.warn(XentDrift(diff.summary_text(d, limit=5)))
        _skip_if_modes_unchecked(found, f"{self.label} against the baseline")

    def reportinfo(self):
        return self.path, None, f"xent {self.label} against the baseline {self.config.stash[KEY].baseline}"


class XentCollector(pytest.Collector):
    """`xent`: one collector per framework beneath it."""

    def collect(self):
        for framework, runtime, label in self.config.stash[KEY].who():
            yield FrameworkCollector.from_parent(self, name=label, framework=framework, runtime=runtime, label=label)


class FrameworkCollector(pytest.Collector):
    """`xent::<label>` (a framework, or framework@runtime): its cases, then its expectations and
    its baseline. Under xdist the plugin schedules by this scope (`--dist loadscope`), so a
    framework runs in one worker."""

    def __init__(self, *, framework: str, runtime, label: str, **kwargs):
        super().__init__(**kwargs)
        self.framework, self.runtime, self.label = framework, runtime, label

    def collect(self):
        matrix, framework = self.config.stash[KEY], self.label
        who = dict(framework=self.framework, runtime=self.runtime, label=self.label)
        marks = (pytest.mark.slow, pytest.mark.xent, pytest.mark.xdist_group(framework))
        made, seen = [], {}
        for ids in matrix.cases.values():
            for case_id in ids:
                seen[case_id] = seen.get(case_id, 0) + 1
        for suite, ids in matrix.cases.items():  # an id in two suites is told apart by its suite
            made += [XentItem.from_parent(self, name=f"{framework}-{case_id}" if seen[case_id] == 1
                                          else f"{framework}-{Path(suite).name}-{case_id}",
                                          case_id=case_id, suite=suite, **who) for case_id in ids]
        suites = {(Path(suite).name, case_id) for suite, ids in matrix.cases.items() for case_id in ids}
        made += [ExpectationItem.from_parent(self, name=f"expectation-{entry.id}-{framework}", entry=entry, **who)
                 for entry in matrix.expectations if self.framework in entry.frameworks
                 and matrix.witnesses.cases(self.framework, entry.id) & suites]
        if matrix.baseline:
            made.append(BaselineItem.from_parent(self, name=f"baseline-{framework}", **who))
        for item in made:
            for mark in marks:
                item.add_marker(mark)
        return made


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    """Add the matrix's tests before -k and -m deselect (those run later in this hook), ahead of
    the others: a framework's scope is the longest, so under xdist it starts first rather than
    running alone at the end."""
    if KEY not in config.stash:
        return
    # genitems collects recursively and reports each collector, so "collected N items" counts them
    items[:0] = list(session.genitems(XentCollector.from_parent(session, name="xent", nodeid="xent")))


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    """What each framework's run covers: the cases of the tests left after deselection."""
    if KEY not in session.config.stash:
        return
    matrix = session.config.stash[KEY]
    for _, _, label in matrix.who():
        matrix.selected[label] = {i.case_id for i in session.items if isinstance(i, XentItem) and i.label == label}


def pytest_terminal_summary(terminalreporter, config):
    if KEY not in config.stash or not config.stash[KEY].runs:
        return
    from .report import inexpressible
    from .repro import FOLDER
    matrix = config.stash[KEY]
    for label, found in matrix.runs.items():
        for mode, why in found.unavailable.items() if not found.skipped else ():
            terminalreporter.write_line(f"xent {label}: mode {mode} not run, it cannot run here: {why}")
        if found.rows:
            where = matrix.out / label
            scripts = (f"reproducers {where / FOLDER}/" if (where / FOLDER).is_dir()
                       else "no reproducers (nothing diverged)")
            terminalreporter.write_line(f"xent {label}: report {where / 'report.html'}; {scripts} "
                                        f"(rerun: {shlex.join(['xent', 'report', str(where)])})")
            for c in inexpressible(matrix.frames[label]).itertuples(index=False):
                terminalreporter.write_line(f"xent {label}: no API can express {c.count} case(s), skipped: "
                                            f"{c.examples}{' ...' if c.count > 3 else ''} (e.g. {c.reason})")

