"""The registry of frameworks: the adapters shipped here, and any a third party installs
under the entry-point group `xent_conformance.adapters` (name: the framework; value:
`module:ENTRY`, an `AdapterEntry`). Listing a framework imports nothing of it; `load`
imports its adapter module, and with it the framework."""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from .base import Adapter

ENTRY_POINT_GROUP = "xent_conformance.adapters"


@dataclass(frozen=True)
class AdapterEntry:
    name: str  # the framework's name in results, options and expectations
    module: str  # the adapter module; it defines ADAPTER, an Adapter
    required_modules: tuple[str, ...]  # what must be importable for the adapter to load
    # whether workers may be forked from a process that imported the adapter module: its import
    # starts no thread and touches no device (a worker killed by a fatal error is then replaced in
    # milliseconds: conformance.runner.ForkServer)
    forks: bool = False
    # the execution mode it runs unless asked for another: its adapter's first (Adapter.modes); a
    # results file without a `mode` column ran in it
    default_mode: str = "eager"


BUILTIN = (
    AdapterEntry("torch", "conformance.adapters.torch", ("torch",), forks=True),
    AdapterEntry("tensorflow", "conformance.adapters.tensorflow", ("tensorflow", "keras")),
    AdapterEntry("jax", "conformance.adapters.jax", ("jax", "optax"), default_mode="jit"),
    # Keras' losses on its other backends (on TensorFlow they are the tensorflow framework's rows)
    AdapterEntry("keras-jax", "conformance.adapters.keras_jax", ("keras", "jax", "optax"), default_mode="jit"),
    AdapterEntry("keras-torch", "conformance.adapters.keras_torch", ("keras", "torch")),
    AdapterEntry("mlx", "conformance.adapters.mlx", ("mlx",)),
    AdapterEntry("paddle", "conformance.adapters.paddle", ("paddle",)),
)


@cache  # the installed entry points do not change while a process runs; reading them is slow
def _entries() -> tuple[dict[str, AdapterEntry], dict[str, str]]:
    found, broken = {entry.name: entry for entry in BUILTIN}, {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry = point.load()
        except Exception as e:  # noqa: BLE001 (a broken plugin is reported; it never stops the others)
            broken[point.name] = f"{point.value}: {type(e).__name__}: {e}"
            continue
        if not isinstance(entry, AdapterEntry):
            broken[point.name] = f"{point.value} is a {type(entry).__name__}, not a conformance.adapters.AdapterEntry"
        elif entry.name not in found:
            found[entry.name] = entry
    return found, broken


def registry() -> dict[str, AdapterEntry]:
    """Every framework that can be asked for: the built-in ones and the plugins that load."""
    return _entries()[0]


def not_loadable() -> dict[str, str]:
    """Installed plugins whose entry point fails to load, and why (the rest run without them)."""
    return _entries()[1]


FRAMEWORKS: tuple[str, ...] = tuple(registry())


def default_mode(framework: str) -> str:
    entry = registry().get(framework)
    return entry.default_mode if entry else "eager"


def missing_module(framework: str) -> str | None:
    """The first module the framework needs that is not installed, without importing it."""
    return next((m for m in registry()[framework].required_modules if importlib.util.find_spec(m) is None), None)


def load(framework: str) -> Adapter:
    adapter = importlib.import_module(registry()[framework].module).ADAPTER
    if not isinstance(adapter, Adapter):
        raise TypeError(f"{registry()[framework].module}.ADAPTER is not a conformance.adapters.base.Adapter")
    return adapter
