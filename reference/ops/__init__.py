"""The registry of ops: every module in this package that defines `OP`.

Adding an op is adding a module here (and the adapters' table entries that compute it);
nothing else lists the ops.
"""
from __future__ import annotations

import importlib
import pkgutil

from ..op import Op


def _discover() -> dict[str, Op]:
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        op = getattr(importlib.import_module(f"{__name__}.{info.name}"), "OP", None)
        if isinstance(op, Op):
            found[op.name] = op
    return found


OPS: dict[str, Op] = _discover()
