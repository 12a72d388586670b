"""Known divergences, keyed by their cause: the expectations file.

One entry per cause (a mechanism in a framework's implementation, with its evidence),
matching result rows by data: the framework, APIs, ops, required case features, case
parameters, dtypes, devices, outputs, the verdicts it explains, the variant it accepts,
and the framework versions it holds for (`requires`, PEP 508 specifiers). Case globs are
for the few causes nothing else can say. Nothing here branches on a framework's name.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from .verdicts import RELATION, VARIANT, VERDICTS

DEFAULT_PATH = Path(__file__).with_name("expectations.toml")
GLOB_FIELDS = ("apis", "ops", "cases", "dtypes", "devices", "device_names", "modes", "outputs")
FIELDS = {"id", "frameworks", "verdicts", "variant", "detail", "features", "any_features", "params", "requires",
          "reason", "evidence", *GLOB_FIELDS}
PARAMS = {"target_kind", "reduction", "weighted", "pos_weighted", "ignore_index", "label_smoothing"}


class ExpectationsError(ValueError):
    pass


@dataclass(frozen=True)
class Expectation:
    id: str
    frameworks: tuple[str, ...]
    verdicts: tuple[str, ...]
    reason: str
    evidence: tuple[str, ...]
    variant: str = ""  # for a variant verdict: a glob naming the variant(s) this cause accepts
    detail: tuple[str, ...] = ("*",)  # globs on the verdict's detail (one must match)
    apis: tuple[str, ...] = ("*",)
    ops: tuple[str, ...] = ("*",)
    cases: tuple[str, ...] = ("*",)
    dtypes: tuple[str, ...] = ("*",)
    devices: tuple[str, ...] = ("*",)
    device_names: tuple[str, ...] = ("*",)
    modes: tuple[str, ...] = ("*",)  # execution modes (eager, compile, function, xla, jit)
    outputs: tuple[str, ...] = ("*",)
    features: tuple[str, ...] = ()  # every one must be among the case's features
    any_features: tuple[str, ...] = ()  # at least one must be (when given)
    params: Mapping[str, object] = field(default_factory=dict)  # case parameters that must be equal
    requires: tuple[Requirement, ...] = ()  # framework versions it holds for

    def covers_case(self, framework: str, op: str, case_id: str, features, params: Mapping) -> bool:
        """Whether the case is in this cause's scope, whatever its results."""
        return (framework in self.frameworks and _any_glob(op, self.ops) and _any_glob(case_id, self.cases)
                and set(self.features) <= set(features)
                and (not self.any_features or bool(set(self.any_features) & set(features)))
                and all(params.get(k) == v for k, v in self.params.items()))

    def covers(self, row) -> bool:
        """Whether the row is in this cause's scope (its verdict aside)."""
        params = row["params"]
        params = json.loads(params) if isinstance(params, str) else params
        return (self.covers_case(row["framework"], row["op"], row["case_id"], str(row["features"]).split(","), params)
                and _any_glob(row["api"], self.apis) and _any_glob(row["dtype"], self.dtypes)
                and _any_glob(row["device"], self.devices) and _any_glob(row["device_name"], self.device_names)
                and _any_glob(row["mode"], self.modes) and _any_glob(row["output"], self.outputs))

    def explains(self, row) -> bool:
        if row["verdict"] not in self.verdicts or not _any_glob(row["detail"], self.detail):
            return False
        if row["verdict"] in (VARIANT, RELATION) and self.variant and not self.accepted(row):
            return False
        return self.covers(row)

    def accepted(self, row) -> str:
        """The first of the row's variants this cause accepts, or ""."""
        return next((v for v in str(row["variants"]).split(",") if v and fnmatchcase(v, self.variant)), "")

    def applies_to(self, versions: Mapping[str, str]) -> bool:
        """Whether the entry holds for a runtime with these installed versions
        (distribution name -> version); a distribution the runtime lacks fails its specifier."""
        for req in self.requires:
            installed = versions.get(req.name.lower())
            if installed is None:
                return False
            try:
                version = Version(installed)
            except InvalidVersion:
                return False
            # PEP 440: a specifier without a local label ignores the version's (+cpu, +cu130)
            if not req.specifier.contains(version, prereleases=True):
                return False
        return True


def _any_glob(value, patterns) -> bool:
    return any(fnmatchcase(str(value), p) for p in patterns)


def load_expectations(path: str | Path = DEFAULT_PATH, frameworks=None) -> list[Expectation]:
    """Read and validate the whole file before anything runs. `frameworks`: the names an
    entry may use (the registry's); an unknown one is an error, not a silent non-match."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:  # TOMLDecodeError is a ValueError
        raise ExpectationsError(f"{path}: cannot read the expectations file: {e}") from None
    unknown_tables = sorted(set(doc) - {"cause", "plugins"})
    if unknown_tables:
        raise ExpectationsError(f"{path}: unknown top-level key {unknown_tables[0]!r}; causes go in [[cause]] tables")
    # frameworks installed separately (plugins) that entries may name where they are not installed
    plugins = doc.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) and p for p in plugins):
        raise ExpectationsError(f"{path}: field 'plugins': a list of framework names")
    if frameworks is not None:
        frameworks = [*frameworks, *(p for p in plugins if p not in frameworks)]
    if "cause" not in doc:  # most likely a mistake (every divergence would turn unexpected): say so
        raise ExpectationsError(f"{path}: no [[cause]] tables; write `cause = []` to run with no expectations")
    raw_entries = doc["cause"]
    if not isinstance(raw_entries, list):
        raise ExpectationsError(f"{path}: 'cause' must be an array of tables ([[cause]])")
    found, seen = [], set()
    for i, raw in enumerate(raw_entries):
        found.append(_parse(raw, path, i, seen, frameworks))
    return found


def _parse(raw, path: Path, index: int, seen: set, frameworks) -> Expectation:
    if not isinstance(raw, dict):
        raise ExpectationsError(f"{path}: expectation #{index}: field 'cause': each entry is a [[cause]] table")
    ident = raw.get("id") if isinstance(raw.get("id"), str) else f"#{index}"

    def err(name, problem):
        return ExpectationsError(f"{path}: expectation {ident!r}: field {name!r}: {problem}")

    def strings(name, required=False):
        value = raw.get(name)
        if value is None:
            if required:
                raise err(name, "required, a non-empty list of strings")
            return None
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise err(name, "a non-empty list of non-empty strings")
        return tuple(value)

    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise err(unknown[0], f"unknown field (known: {', '.join(sorted(FIELDS))})")
    for name in ("id", "reason"):
        if not isinstance(raw.get(name), str) or not raw[name].strip():
            raise err(name, "required, a non-empty string")
    if ident in seen:
        raise err("id", "duplicate")
    seen.add(ident)
    evidence = raw.get("evidence")
    evidence = [evidence] if isinstance(evidence, str) else evidence
    if not isinstance(evidence, list) or not evidence or not all(
            isinstance(e, str) and e.startswith(("https://", "http://")) for e in evidence):
        raise err("evidence", "required: an upstream link (issue, docs page, source line), or a list of them")
    fws = strings("frameworks", required=True)
    if frameworks is not None:
        bad = [f for f in fws if f not in frameworks]
        if bad:
            raise err("frameworks", f"unknown framework {bad[0]!r}; known: {', '.join(frameworks)}")
    verdicts = strings("verdicts", required=True)
    bad = [v for v in verdicts if v not in VERDICTS + (RELATION,)]
    if bad:
        raise err("verdicts", f"unknown verdict {bad[0]!r}; one of {', '.join(VERDICTS + (RELATION,))}")
    if "variant" in raw and not isinstance(raw["variant"], str):
        raise err("variant", "a string (a glob on the variant's name)")
    detail = [raw["detail"]] if isinstance(raw.get("detail"), str) else raw.get("detail", ["*"])
    if not isinstance(detail, list) or not detail or not all(isinstance(d, str) for d in detail):
        raise err("detail", "a glob on the verdict's detail, or a list of them")
    if raw.get("variant") and VARIANT not in verdicts and RELATION not in verdicts:
        raise err("variant", "only meaningful with the 'variant' verdict (or 'relation': the relation's name)")
    params = raw.get("params", {})
    if not isinstance(params, dict) or not set(params) <= PARAMS:
        raise err("params", f"a table of case parameters among {', '.join(sorted(PARAMS))}")
    if any(not isinstance(v, (str, int, float, bool)) for v in params.values()):
        raise err("params", "values must be strings, numbers or booleans")
    requires = []
    for spec in strings("requires") or ():
        try:
            requires.append(Requirement(spec))
        except InvalidRequirement as e:
            raise err("requires", f"not a PEP 508 requirement: {spec!r} ({str(e).splitlines()[0]})") from None
    globs = {name: strings(name) for name in GLOB_FIELDS if name in raw}
    return Expectation(id=ident, frameworks=fws, verdicts=verdicts, reason=raw["reason"].strip(),
                       evidence=tuple(evidence), variant=raw.get("variant", ""), detail=tuple(detail),
                       features=strings("features") or (), any_features=strings("any_features") or (), params=params, requires=tuple(requires), **globs)


WITNESS_KEY = ("suite", "case_id", "case_sha256", "mode", "api", "device", "dtype", "output")


@dataclass(frozen=True)
class Witnesses:
    """The rows each cause explained in a reference run (a baseline: the default suite under the
    pinned versions), by framework: the inputs known to trigger its mechanism. A cause is judged
    stale only when some of them ran again and it explained nothing: a user's own cases, a
    dtype subset or another version's runtime never make a cause stale by merely touching its
    scope with inputs that do not trigger it (docs/expectations.md)."""

    by_framework: Mapping[str, Mapping[tuple, tuple[str, ...]]] = field(default_factory=dict)  # key -> cause ids
    source: str = ""

    def causes(self, framework: str) -> set[str]:
        return {c for ids in self.by_framework.get(framework, {}).values() for c in ids}

    def cases(self, framework: str, cause: str) -> set[tuple[str, str]]:
        """The (suite, case id) pairs that witnessed a cause."""
        return {(k[0], k[1]) for k, ids in self.by_framework.get(framework, {}).items() if cause in ids}


NO_WITNESSES = Witnesses()


def witnesses_from(rows, source: str = "") -> Witnesses:
    """Witnesses of a results frame (or any rows with WITNESS_KEY, framework and known)."""
    found: dict[str, dict[tuple, list[str]]] = {}
    for r in (rows.to_dict("records") if hasattr(rows, "to_dict") else rows):
        if r["known"] and r["verdict"] not in ("unsupported", "crashed"):
            found.setdefault(r["framework"], {}).setdefault(tuple(r[k] for k in WITNESS_KEY), []).append(r["known"])
    return Witnesses({fw: {k: tuple(v) for k, v in keys.items()} for fw, keys in found.items()}, source)


def witnesses_for(baseline: str | Path | None = None) -> Witnesses:
    """The witnesses of the given baseline (a results file or run folder), else of the stored
    baselines (the default modes' and every mode's); without any, none (no entry is judged stale)."""
    from .suites import BASELINES_DIR, results_path
    if baseline:
        path = results_path(baseline)
        return read_witnesses(path) if path.exists() else NO_WITNESSES
    found: dict[str, dict[tuple, tuple[str, ...]]] = {}
    paths = sorted(BASELINES_DIR.glob("*.parquet"))
    for path in paths:
        for framework, keys in read_witnesses(path).by_framework.items():
            mine = found.setdefault(framework, {})
            for key, ids in keys.items():
                mine[key] = tuple(dict.fromkeys(mine.get(key, ()) + ids))
    return Witnesses(found, ", ".join(map(str, paths))) if paths else NO_WITNESSES


def read_witnesses(path: str | Path) -> Witnesses:
    """Witnesses of a stored results file; read with pyarrow, the columns needed only."""
    import pyarrow.parquet as pq

    from .adapters import default_mode
    try:
        present = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[c for c in ["framework", "known", "verdict", *WITNESS_KEY]
                                             if c != "mode" or c in present])
    except Exception as e:  # a file that is not a results file: one clear error
        raise ExpectationsError(f"{path}: cannot read the witnesses of the expectations ({type(e).__name__}: "
                                f"{str(e)[:120]})") from None
    rows = table.to_pylist()
    if "mode" not in present:  # a file from before modes: each framework ran in its default mode
        rows = [{**r, "mode": default_mode(r["framework"])} for r in rows]
    return witnesses_from(rows, str(path))


@dataclass
class Matcher:
    """Expectations indexed by framework, each kept only where it applies to the runtime's
    versions; remembers which entries explained a row and which had a witness row run (a row
    the entry explained in the reference run, `Witnesses`). A row's scope is found through
    indexes, not by globbing every entry for every row: the entries whose case fields cover a
    case, once per case, then the row's own fields, each (value, globs) pair decided once."""

    by_framework: dict[str, list[Expectation]] = field(default_factory=dict)
    witnesses: Witnesses = NO_WITNESSES
    used: set[str] = field(default_factory=set)
    witnessed: set[str] = field(default_factory=set)
    _cases: dict = field(default_factory=dict, repr=False, compare=False)  # case key -> (entries, params)
    _globs: dict = field(default_factory=dict, repr=False, compare=False)  # (value, globs) -> bool

    _active: set = field(default_factory=set, repr=False, compare=False)  # ids of the entries kept

    def __post_init__(self):
        self._active = {e.id for entries in self.by_framework.values() for e in entries}

    @classmethod
    def build(cls, expectations: list[Expectation], framework: str, versions: Mapping[str, str],
              witnesses: Witnesses = NO_WITNESSES) -> "Matcher":
        return cls({framework: [e for e in expectations if framework in e.frameworks and e.applies_to(versions)]},
                   witnesses)

    def _glob(self, value, patterns) -> bool:
        key = (str(value), patterns)
        found = self._globs.get(key)
        if found is None:
            found = self._globs[key] = _any_glob(value, patterns)
        return found

    def _case(self, row) -> tuple[list[Expectation], Mapping]:
        """The entries whose case fields cover the row's case, and its parameters parsed."""
        framework, features, params = row["framework"], str(row["features"]), row["params"]
        key = (framework, row["op"], row["case_id"], features,
               params if isinstance(params, str) else json.dumps(params, sort_keys=True))
        found = self._cases.get(key)
        if found is None:
            parsed = json.loads(params) if isinstance(params, str) else params
            found = self._cases[key] = ([e for e in self.by_framework.get(framework, ()) if e.covers_case(
                framework, row["op"], row["case_id"], features.split(","), parsed)], parsed)
        return found

    def scope(self, row) -> list[Expectation]:
        """The entries whose scope holds the row (Expectation.covers), in the file's order."""
        g = self._glob
        return [e for e in self._case(row)[0] if g(row["api"], e.apis) and g(row["dtype"], e.dtypes)
                and g(row["device"], e.devices) and g(row["device_name"], e.device_names)
                and g(row["mode"], e.modes) and g(row["output"], e.outputs)]

    def match(self, row) -> Expectation | None:
        scope = self.scope(row)
        found = None
        if scope:  # only an entry in scope can explain the row (explains: verdict, detail, variant, covers)
            row = {**row, "params": self._case(row)[1]}  # parsed once per case, not by every entry
            found = next((e for e in scope if e.explains(row)), None)
        if found:
            self.used.add(found.id)
        if row["verdict"] not in ("unsupported", "crashed"):
            witnessed = self.witnesses.by_framework.get(row["framework"], {}).get(tuple(row[k] for k in WITNESS_KEY))
            if witnessed:
                self.witnessed.update(c for c in witnessed if c in self._active)
        return found

    def stale(self) -> list[str]:
        """Entries whose witness rows ran and that explained nothing: the framework changed."""
        return stale_of(self.witnessed, self.used)


def stale_of(witnessed, used) -> list[str]:
    return sorted(set(witnessed) - set(used))


def stale_message(ids) -> str:
    return "; ".join(f"expectation {i} no longer matches: the framework changed" for i in ids)
