"""A worker process: one framework's adapter, driven by JSON lines on stdin.

The runner starts one per framework (and runtime), so a crash or hang (a CUDA device
assert, a segfault) costs only the case in flight. Replies go to a private copy of the
original stdout; the process's own stdout is pointed at stderr, so nothing a framework
prints can corrupt the protocol.

Requests are JSON lines; a reply is a JSON line followed by the raw bytes of its arrays
(no hex: the bits go as they are, in this machine's byte order, which is the runner's).

Hello:   {"hello": {"framework", "version", "versions", "devices": [{"id", "label", "name"}],
          "apis": [{"name", "op", "code", "class_axis", "unbatched", "weight_as", "repro"}],
          "domain_errors": [...]}} or {"hello": null, "message"}
Request: {"suite": DIR, "case": ID, "tasks": [{"dtype": D, "api": NAME, "device": DEVICE ID}, ...]}
Replies: one per task, in order: {"outputs": {"loss": {...}, "grad": {...}}, "fatal": bool};
         after a fatal reply the worker exits. An output is
         {"status": "ok", "dtype", "shape", "nbytes"} | {"status": "raised", "type", "message"} |
         {"status": "unsupported", "message"}; the line is followed by the `nbytes` bytes of
         each "ok" output, in the order of OUTPUTS.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from importlib import metadata

from reference.golden import OUTPUTS, load_suite

from . import adapters
from .adapters.base import prepare, restore, to_bits, unsupported_reason


class AdapterError(Exception):
    """An exception raised by the adapter's own code, not by the framework's API."""


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:400]}"


def _encode(value) -> tuple[dict, bytes]:
    """An output's header and the bytes that follow the reply's line."""
    if isinstance(value, dict):  # already a status (unsupported, adapter error)
        return value, b""
    if isinstance(value, BaseException):
        return {"status": "raised", "type": type(value).__name__, "message": _describe(value)}, b""
    dtype, bits = to_bits(value)
    data = bits.tobytes()
    return {"status": "ok", "dtype": dtype, "shape": list(bits.shape), "nbytes": len(data)}, data


INPUTS = ("input.", "target", "weight.", "pos_weight.")


def inputs(case, dtypes) -> dict:
    """The arrays an adapter's layout reads (adapters.base.prepare: "input.float32", "target",
    ...) in these dtypes: never the expected outputs and condition scales, most of the file."""
    keep = {"", *dtypes}  # "target" (class indices) has no dtype
    return case.arrays_where(lambda name: name.startswith(INPUTS) and name.partition(".")[2] in keep)


def installed_versions(names) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name.lower()] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def serve(framework: str, reply) -> None:
    try:
        adapter = adapters.load(framework)
        apis = {api.name: api for api in adapter.apis}
        hello = {"framework": framework, "version": adapter.version(),
                 "versions": installed_versions(adapter.distributions),
                 "devices": [{"id": d.id, "label": d.label, "name": d.name} for d in adapter.devices()],
                 "apis": [{"name": a.name, "op": a.op, "code": a.code, "class_axis": a.class_axis,
                           "unbatched": a.unbatched, "weight_as": a.weight_as, "repro": adapter.recipe(a)}
                          for a in adapter.apis],
                 "domain_errors": list(adapter.domain_errors)}
    except Exception as e:  # not installed, or broken: the runner skips this framework
        reply({"hello": None, "message": _describe(e)})
        return
    reply({"hello": hello})

    suites: dict[str, dict] = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req["suite"] not in suites:
            suites[req["suite"]] = {c.id: c for c in load_suite(req["suite"])}
        case = suites[req["suite"]][req["case"]]
        arrays = inputs(case, {t["dtype"] for t in req["tasks"]})  # one request holds every task of its case
        for task in req["tasks"]:
            out = _run_task(adapter, apis[task["api"]], case, arrays, task)
            fatal = any(isinstance(v, BaseException) and adapter.is_fatal(v) for v in out.values())
            encoded = {o: _encode(out[o]) for o in OUTPUTS}
            reply({"outputs": {o: header for o, (header, _) in encoded.items()}, "fatal": fatal},
                  [data for _, data in encoded.values()])
            if fatal:
                return


def _run_task(adapter, api, case, arrays, task: dict) -> dict:
    reason = unsupported_reason(api, case)
    if reason:
        return {o: {"status": "unsupported", "message": reason} for o in OUTPUTS}
    try:
        inputs = prepare(api, case, arrays, task["dtype"])
        out = adapter.execute(api, inputs, task["device"])
        return {o: v if isinstance(v, BaseException) else restore(api, case, o, v) for o, v in out.items()}
    except Exception as e:  # a bug of ours, not the framework's: say so plainly
        traceback.print_exc()
        return {o: AdapterError(f"adapter error: {_describe(e)}") for o in OUTPUTS}


def main() -> None:
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever the framework prints goes to stderr
    sys.stdout = sys.stderr

    def reply(message: dict, data: list[bytes] = ()) -> None:
        protocol.write(json.dumps(message).encode() + b"\n")
        for chunk in data:
            protocol.write(chunk)
        protocol.flush()

    serve(sys.argv[1], reply)


if __name__ == "__main__":
    main()
