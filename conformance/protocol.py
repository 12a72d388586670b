"""The worker protocol's messages, typed: what a worker says when it starts (`Hello`), what
the runner asks (`Request` of `TaskRequest`s) and what the worker answers (`Reply` of
`Output`s). They travel as JSON lines (conformance/worker.py says how); `to_json` and
`from_json` are the only places that spell their fields."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .adapters.base import Api


ALL_MODES = "all"


def chosen_modes(available: list[str], requested: tuple[str, ...] | None) -> list[str]:
    """The modes a framework runs: its default (the first it lists) when none is asked for, every
    one for `all`, else those asked for that it has (in its order)."""
    if not requested:
        return available[:1]
    if ALL_MODES in requested:
        return list(available)
    return [m for m in available if m in requested]


@dataclass(frozen=True)
class DeviceInfo:
    id: str  # what the adapter's execute() takes
    label: str  # the results' `device` column
    name: str  # what decides the numbers


@dataclass(frozen=True)
class ModeInfo:
    name: str
    about: str
    repro: str  # the mode's wrapper as Python source over `program` (a reproducer runs it)
    settings: str = ""  # what besides the device decides its numbers (compiler ISA, threads)
    unavailable: str = ""  # why it cannot run here (its compiler failed to set up), or ""


@dataclass(frozen=True)
class Recipe:
    """A reproducer's framework parts (adapters.base.Adapter.recipe)."""

    setup: str
    run: str
    call: str
    helpers: str


@dataclass(frozen=True)
class ApiInfo:
    name: str
    op: str
    code: str
    class_axis: str
    unbatched: bool
    weight_as: str
    recipe: Recipe | None = None

    def layout(self) -> Api:
        """The Api as far as the runner needs it: its layout and call (adapters.base.prepare)."""
        return Api(self.name, self.op, self.code, class_axis=self.class_axis, unbatched=self.unbatched,
                   weight_as=self.weight_as)


@dataclass
class Hello:
    """A worker's first line. A spare forked by the fork server says only `framework` and
    `devices` (the runner keeps the first worker's hello)."""

    framework: str
    version: str = ""
    versions: dict = field(default_factory=dict)  # distribution -> installed version
    devices: list[DeviceInfo] = field(default_factory=list)
    apis: list[ApiInfo] = field(default_factory=list)
    modes: list[ModeInfo] = field(default_factory=list)  # the first is the framework's default
    domain_errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Hello":
        apis = [ApiInfo(**{**a, "recipe": Recipe(**a["recipe"]) if a.get("recipe") else None}) for a in d.get("apis", ())]
        return cls(d["framework"], d.get("version", ""), d.get("versions", {}),
                   [DeviceInfo(**x) for x in d.get("devices", ())], apis, [ModeInfo(**m) for m in d.get("modes", ())],
                   list(d.get("domain_errors", ())))

    def mode_names(self) -> list[str]:
        return [m.name for m in self.modes]


@dataclass(frozen=True)
class TaskRequest:
    dtype: str
    api: str
    device: str  # a DeviceInfo.id
    mode: str


@dataclass(frozen=True)
class Request:
    """Every task of one case, in one request: the worker reads the case once."""

    suite: str  # the suite's folder
    case: str
    tasks: list[TaskRequest]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Request":
        return cls(d["suite"], d["case"], [TaskRequest(**t) for t in d["tasks"]])


@dataclass
class Output:
    """One output of a task: "ok" (its bits follow the reply's line), "raised" or "unsupported"."""

    status: str
    dtype: str = ""
    shape: list[int] = field(default_factory=list)
    nbytes: int = 0
    type: str = ""  # the exception's class name
    message: str = ""
    data: bytes = b""  # the bits, read from the stream (never in the JSON line)

    def header(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "data"}


@dataclass
class Reply:
    outputs: dict[str, Output]
    fatal: bool = False  # the worker exits after it (a CUDA device-side assert poisons the process)

    def to_json(self) -> dict:
        return {"outputs": {o: out.header() for o, out in self.outputs.items()}, "fatal": self.fatal}

    @classmethod
    def from_json(cls, d: dict) -> "Reply":
        return cls({o: Output(**v) for o, v in d["outputs"].items()}, d.get("fatal", False))
