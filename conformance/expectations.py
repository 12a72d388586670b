"""Known divergences: the expectations file, where each real divergence the cases find is
recorded with its reason and evidence. Matching is by data (framework, api, case,
features, dtype, device, output, verdict), never by code in the comparison."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from .verdicts import VERDICTS

DEFAULT_PATH = Path(__file__).with_name("expectations.toml")
FIELDS = {"id", "framework", "apis", "cases", "features", "dtypes", "devices", "outputs",
          "verdict", "detail", "reason", "evidence"}


class ExpectationsError(ValueError):
    pass


@dataclass(frozen=True)
class Expectation:
    id: str
    framework: str
    verdict: str
    reason: str
    evidence: str
    apis: tuple[str, ...] = ("*",)
    cases: tuple[str, ...] = ("*",)
    features: tuple[str, ...] = ()  # every one must be among the case's features
    dtypes: tuple[str, ...] = ("*",)
    devices: tuple[str, ...] = ("*",)
    outputs: tuple[str, ...] = ("*",)
    detail: str = "*"  # a glob on the verdict's detail, e.g. the variant's name

    def matches(self, row) -> bool:
        def any_glob(value, patterns):
            return any(fnmatchcase(str(value), p) for p in patterns)

        features = set(str(row["features"]).split(","))
        return (row["framework"] == self.framework and row["verdict"] == self.verdict
                and any_glob(row["api"], self.apis) and any_glob(row["case_id"], self.cases)
                and any_glob(row["dtype"], self.dtypes) and any_glob(row["device"], self.devices)
                and any_glob(row["output"], self.outputs) and fnmatchcase(str(row["detail"]), self.detail)
                and set(self.features) <= features)


def load_expectations(path: str | Path = DEFAULT_PATH) -> list[Expectation]:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ExpectationsError(f"{path}: {e}") from None
    found, seen = [], set()
    for i, raw in enumerate(doc.get("known", [])):
        ident = raw.get("id", f"#{i}")

        def err(field, problem):
            return ExpectationsError(f"{path}: expectation {ident!r}: field {field!r}: {problem}")

        unknown = sorted(set(raw) - FIELDS)
        if unknown:
            raise err(unknown[0], "unknown field")
        for required in ("id", "framework", "verdict", "reason", "evidence"):
            if not isinstance(raw.get(required), str) or not raw[required]:
                raise err(required, "required, a non-empty string")
        if raw["verdict"] not in VERDICTS:
            raise err("verdict", f"one of {', '.join(VERDICTS)}")
        if ident in seen:
            raise err("id", "duplicate")
        seen.add(ident)
        lists = {}
        for name in ("apis", "cases", "features", "dtypes", "devices", "outputs"):
            if name in raw:
                if not isinstance(raw[name], list) or not all(isinstance(v, str) for v in raw[name]):
                    raise err(name, "a list of strings")
                lists[name] = tuple(raw[name])
        found.append(Expectation(id=raw["id"], framework=raw["framework"], verdict=raw["verdict"],
                                 reason=raw["reason"], evidence=raw["evidence"],
                                 detail=raw.get("detail", "*"), **lists))
    return found


def match(expectations, row) -> Expectation | None:
    return next((e for e in expectations if e.matches(row)), None)
