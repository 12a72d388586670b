"""The adapter contract, and what every adapter shares, free of framework imports.

An adapter is one module per framework (conformance/adapters/<framework>.py) defining
`ADAPTER`, an `Adapter` with a declarative table `apis` of `Api` entries: which op an API
computes, which case parameters it can express, and a one-line call of the documented
API, written as Python source: the adapter runs that source, and a reproducer prints it. Everything a case asks for that an entry does not declare is `unsupported`, with the
reason, decided here the same way for every framework. The registry of adapters is
conformance/adapters/__init__.py.
"""
from __future__ import annotations

import contextlib
import inspect
import re
import sys
import textwrap
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any, Callable

import ml_dtypes
import numpy as np

from reference.formats import FORMATS
from reference.golden import GoldenCase
from reference.ops import OPS

# numpy dtypes that view the golden bit patterns (FloatFormat.storage) without converting them
VIEW_DTYPES = {"float64": np.dtype(np.float64), "float32": np.dtype(np.float32),
               "float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16)}


@dataclass(frozen=True)
class Api:
    name: str  # the documented name a user calls
    op: str  # an op of reference.ops.OPS
    # the documented call, a Python expression over the fields of `Inputs` (x, target, weight,
    # pos_weight, mask, ignore_index, label_smoothing, reduction, dtype) and the adapter
    # module's names; it gives the framework's loss tensor
    code: str
    targets: tuple[str, ...] = ()  # target kinds it accepts: "index", "probs"
    params: frozenset[str] = frozenset()  # weight, pos_weight, ignore_index, label_smoothing
    class_axis: str = "first"  # "first" (dim 1, or 0 unbatched) or "last"
    unbatched: bool = True  # accepts (C,) input; otherwise a batch axis of 1 is added
    weight_as: str = "weight"  # "weight": a class-weight vector; "sample_weight": w[y] per position
    # parameters the installed version lacks, with the reason: those cases are `unsupported`
    absent: tuple[tuple[str, str], ...] = ()
    outputs: tuple[str, ...] = ("loss", "grad")  # a loss-only API (no gradient) gives ("loss",)


@dataclass
class Inputs:
    """A case's arrays in the layout an API expects (numpy; the adapter makes tensors)."""

    x: np.ndarray
    target: np.ndarray | None
    weight: np.ndarray | None  # class or elementwise weights, or per-position sample weights
    pos_weight: np.ndarray | None
    mask: np.ndarray | None  # True where a position counts (index targets with ignore_index)
    ignore_index: int
    label_smoothing: float
    reduction: str
    dtype: str


@dataclass(frozen=True)
class Device:
    id: str  # what the adapter's execute() takes
    label: str  # the results' `device` column: "cpu", "cuda:0", "gpu:0"
    name: str  # what decides the numbers: the CPU model and vector ISA, or the GPU model


INPUT_NAMES = tuple(f.name for f in fields(Inputs))
ARRAY_NAMES = ("x", "target", "weight", "pos_weight", "mask")  # what a program takes; the rest is static


def _same(program):
    return program


def _nothing() -> None:
    pass


@dataclass(frozen=True)
class Mode:
    """One way users run a framework's loss (eager, compiled, traced): what it does to the
    adapter's program (`wrap`), and the same as Python source over the name `program` (`repro`),
    which a reproducer runs. An adapter's first mode is its default."""

    name: str
    about: str  # one line: how the mode runs the API
    wrap: Callable[[Callable], Callable] = _same
    repro: str = "program"
    # what besides the device decides the mode's numbers (compiler, vector ISA, threads): "" or a
    # short text the results record with the device
    settings: Callable[[], str] = str
    # what a fork server runs once for the workers it forks when the run asks for this mode: the
    # imports (and device-free set-up) each worker would otherwise repeat on its first call; it
    # must touch no device and start no thread (a forked child would inherit a dead one)
    preload: Callable[[], None] = _nothing


class Adapter(ABC):
    """One framework. Subclasses set `apis`, `modes` and `domain_errors` and implement the
    methods; `execute` is the same for all: the API's loss as a function of the arrays, the
    framework's gradient idiom around it (`program`), the mode's wrapper around that, one per
    graph, run on the device (`run`)."""

    apis: tuple[Api, ...] = ()
    modes: tuple[Mode, ...] = (Mode("eager", "each op runs as it is called"),)
    # the exception types (class names) by which the framework rejects inputs outside an
    # op's domain; only these count as the expected error of a domain-error case
    domain_errors: tuple[str, ...] = ()
    # the distributions whose versions expectations may be scoped by (`requires`)
    distributions: tuple[str, ...] = ()
    # the dtypes the framework computes these losses in (the others' tasks are `unsupported`), and why not the rest
    dtypes: tuple[str, ...] = tuple(VIEW_DTYPES)
    dtypes_missing: str = ""

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def devices(self) -> list[Device]: ...

    @abstractmethod
    def array(self, values: np.ndarray, device: str):
        """A framework array on the device holding exactly these values."""

    @abstractmethod
    def program(self, loss: Callable) -> Callable:
        """What a mode wraps: the loss itself, or the loss and its gradient (the framework's
        idiom for the gradient of sum(loss) with respect to x), as a function of ARRAY_NAMES."""

    @abstractmethod
    def run(self, program: Callable, arrays: dict) -> tuple:
        """(loss, grad) of the mode's program on the arrays; raises the framework's own error."""

    @abstractmethod
    def numpy(self, value) -> np.ndarray: ...

    def on(self, device: str):
        """The context every step of a task runs in (a framework's device scope)."""
        return contextlib.nullcontext()

    PROGRAMS_KEPT = 256  # a mode's programs (a compiled graph each), the most recently used

    def execute(self, api: Api, inputs: "Inputs", device: str, mode: str | None = None) -> dict[str, Any]:
        """{"loss": array or exception, "grad": array or exception}; an exception is the
        framework's own, raised by its API. One program per graph (the API, the static
        parameters, the arrays' shapes and dtypes, the device): a compiler never recompiles
        one, so no recompile limit sends a task back to eager."""
        chosen = self.mode(mode)
        shapes = tuple(None if getattr(inputs, n) is None else (getattr(inputs, n).shape, str(getattr(inputs, n).dtype))
                       for n in ARRAY_NAMES)
        key = (api.code, chosen.name, inputs.ignore_index, inputs.label_smoothing, inputs.reduction, inputs.dtype,
               device, shapes)
        programs = self.__dict__.setdefault("_programs", OrderedDict())
        if key in programs:
            programs.move_to_end(key)
        else:
            programs[key] = chosen.wrap(self.program(self.loss(api, inputs)))
            if len(programs) > self.PROGRAMS_KEPT:
                programs.popitem(last=False)
        with self.on(device):
            try:
                arrays = {n: None if getattr(inputs, n) is None else self.array(getattr(inputs, n), device)
                          for n in ARRAY_NAMES}
                loss, grad = self.run(programs[key], arrays)  # grad: None for a loss-only API
                # on a GPU an error surfaces at the first synchronisation: the copy to the host
                return {"loss": self.numpy(loss), "grad": None if grad is None else self.numpy(grad)}
            except Exception as e:  # the framework's own error is the observation
                return {"loss": e, "grad": e}

    def mode(self, name: str | None) -> Mode:
        """The mode of that name; None: the default (the first)."""
        if name is None:
            return self.modes[0]
        found = next((m for m in self.modes if m.name == name), None)
        if found is None:
            raise ValueError(f"no mode {name!r} (modes: {', '.join(m.name for m in self.modes)})")
        return found

    # a reproducer's framework parts (conformance/repro.py): `repro_setup` imports the framework
    # and defines tensor(bits, dtype, shape), integers(values, dtype, shape) and bits_of(tensor);
    # `repro_run` defines `program` (the source of `program()` above, with {call} standing for
    # the API's code), then `program = {mode}` (a mode's `repro`), then computes `loss` and
    # `grad` the way run() does
    repro_setup: str = ""
    repro_run: str = ""
    # modules besides the adapter's whose functions a reproducer copies when the call names them
    helper_modules: tuple[str, ...] = ()

    def is_fatal(self, error: BaseException) -> bool:
        """True when the error leaves the process unusable (a CUDA device-side assert)."""
        return False

    def _namespace(self) -> dict:
        return vars(sys.modules[type(self).__module__])

    def loss(self, api: Api, inputs: "Inputs") -> Callable:
        """The API's loss as a function of the arrays (ARRAY_NAMES), the static parameters
        bound: its code, made a new function each time (a compiler's caches go by code object)."""
        static = [n for n in INPUT_NAMES if n not in ARRAY_NAMES]
        outer = eval(f"lambda {', '.join(static)}: lambda {', '.join(ARRAY_NAMES)}: {api.code}", self._namespace())
        function = outer(**{n: getattr(inputs, n) for n in static})
        # what names the function in any process (a mode that keeps compiled code on disk keys it by this)
        function.source = f"{api.code} with " + ", ".join(f"{n}={getattr(inputs, n)!r}" for n in static)
        return function

    def recipe(self, api: Api) -> dict:
        """What a reproducer of this API needs, as text: the framework setup, the run, the call
        and the adapter-module helpers and constants the call and the modes use (found by name)."""
        namespace = {**{k: v for m in self.helper_modules for k, v in vars(sys.modules[m]).items()},
                     **self._namespace()}
        found, order = {}, [api.code, *(m.repro for m in self.modes)]
        while order:
            for name in re.findall(r"\b[A-Za-z_]\w*\b", order.pop()):
                value = namespace.get(name)
                if name in found or name in INPUT_NAMES or value is None:
                    continue
                if inspect.isfunction(value) and value.__module__ in (type(self).__module__, *self.helper_modules):
                    found[name] = textwrap.dedent(inspect.getsource(value))
                    order.append(found[name])
                elif isinstance(value, (bool, int, float, str, dict, tuple)) and name.isupper():
                    found[name] = f"{name} = {value!r}\n"
        return {"setup": self.repro_setup, "run": self.repro_run, "call": api.code,
                "helpers": "\n\n".join(found[n] for n in reversed(found))}


@cache
def cpu_model() -> str:
    """The CPU's model name, as the kernel reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def unsupported_output(adapter: Adapter, api: Api, dtype: str, output: str) -> str | None:
    """Why an output of a dtype cannot be asked of this API (a dtype the framework lacks, a
    loss-only API's gradient), or None."""
    if dtype not in adapter.dtypes:
        return f"{api.name} takes no {dtype}" + (f": {adapter.dtypes_missing}" if adapter.dtypes_missing else "")
    if output not in api.outputs:
        return f"{api.name} gives no {'gradient' if output == 'grad' else output} (it computes {', '.join(api.outputs)})"
    return None


def unsupported_reason(api: Api, case: GoldenCase) -> str | None:
    p = case.params
    if case.op != api.op:
        return f"{api.name} computes {api.op}, not {case.op}"
    if not OPS[case.op].has_targets:
        return None
    if p["target_kind"] not in api.targets:
        return f"{api.name} takes no {p['target_kind']} targets"
    wanted = {"weight": p["weighted"], "pos_weight": p.get("pos_weighted"),
              "ignore_index": "ignore_index" in case.entry["features"], "label_smoothing": p["label_smoothing"]}
    for param, reason in api.absent:
        if wanted.get(param):
            return reason
    if p["weighted"] and "weight" not in api.params:
        return f"{api.name} has no weight parameter"
    if p.get("pos_weighted") and "pos_weight" not in api.params:
        return f"{api.name} has no pos_weight parameter"
    if "ignore_index" in case.entry["features"] and "ignore_index" not in api.params:
        return f"{api.name} cannot ignore a target value"
    if p["label_smoothing"] and "label_smoothing" not in api.params:
        return f"{api.name} has no label-smoothing parameter"
    if p["weighted"] and api.weight_as == "sample_weight" and p["target_kind"] != "index":
        return f"{api.name} takes class weights only as per-sample weights of index targets"
    return None


def view(bits: np.ndarray, dtype: str) -> np.ndarray:
    return bits.view(VIEW_DTYPES[dtype])


def dtype_name(values: np.ndarray) -> str | None:
    """The format name of a numpy array's dtype, or None for another dtype."""
    return next((name for name, d in VIEW_DTYPES.items() if values.dtype == d), None)


def to_bits(values: np.ndarray) -> tuple[str, np.ndarray]:
    """The dtype name and bit patterns of an array a framework returned."""
    name = dtype_name(values)
    if name is None:
        raise TypeError(f"unexpected output dtype {values.dtype}")
    return name, np.asarray(values, order="C").view(FORMATS[name].storage)


def prepare(api: Api, case: GoldenCase, arrays: dict, dtype: str) -> Inputs:
    """The case's inputs in the API's layout: batch axis added if it takes no (C,) input,
    class axis moved last if it wants that. `restore` undoes both on the gradient."""
    p = case.params
    x = view(arrays[f"input.{dtype}"], dtype)
    target = None
    if OPS[case.op].has_targets:
        target = arrays["target"] if p["target_kind"] == "index" else view(arrays[f"target.{dtype}"], dtype)
    if _unbatched_for(api, case):
        x = x[None]
        target = None if target is None else target[None]
    if api.class_axis == "last" and x.ndim > 1:
        x = np.moveaxis(x, 1, -1)
        if target is not None and p["target_kind"] == "probs":
            target = np.moveaxis(target, 1, -1)
    weight = view(arrays[f"weight.{dtype}"], dtype) if p["weighted"] else None
    pos_weight = view(arrays[f"pos_weight.{dtype}"], dtype) if p.get("pos_weighted") else None
    mask = None
    if p["target_kind"] == "index":
        mask = target != p["ignore_index"]
        if weight is not None and api.weight_as == "sample_weight":
            # Keras' documented class_weight idiom: each position weighted by w[y]
            weight = weight[np.where(mask, target, 0)]
    mask = None if mask is None or mask.all() else mask  # an API is told to ignore only what is ignored
    return Inputs(np.asarray(x, order="C"), None if target is None else np.asarray(target, order="C"),
                  weight, pos_weight, mask, p["ignore_index"], p["label_smoothing"], p["reduction"], dtype)


def _unbatched_for(api: Api, case: GoldenCase) -> bool:
    return len(case.entry["input_shape"]) == 1 and not api.unbatched


def api_layout(api: Api, case: GoldenCase, output: str, value: np.ndarray) -> np.ndarray:
    """The inverse of restore: an output in the layout the API returns it."""
    has_class_axis = output == "grad" or OPS[case.op].loss_per_class
    if _unbatched_for(api, case) and (has_class_axis or case.params["reduction"] == "none"):
        value = value[None]
    if api.class_axis == "last" and has_class_axis and value.ndim > 1:
        value = np.moveaxis(value, 1, -1)
    return np.asarray(value, order="C")


def restore(api: Api, case: GoldenCase, output: str, value: np.ndarray) -> np.ndarray:
    """Undo prepare's layout changes on one output. Outputs with a class axis (the
    gradient, log_softmax) get it back at dim 1; an added batch axis is dropped."""
    has_class_axis = output == "grad" or OPS[case.op].loss_per_class
    if api.class_axis == "last" and has_class_axis and value.ndim > 1:
        value = np.moveaxis(value, -1, 1)
    if _unbatched_for(api, case) and (has_class_axis or case.params["reduction"] == "none"):
        value = value[0]
    return np.asarray(value, order="C")
