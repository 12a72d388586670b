"""A worker process: one framework's adapter, driven by JSON lines on stdin.

The runner starts one per framework (and runtime), so a crash or hang (a CUDA device
assert, a segfault) costs only the case in flight. Replies go to a private copy of the
original stdout; the process's own stdout is pointed at stderr, so nothing a framework
prints can corrupt the protocol.

Requests are JSON lines; a reply is a JSON line followed by the raw bytes of its arrays
(no hex: the bits go as they are, in this machine's byte order, which is the runner's). The
messages are the dataclasses of conformance/protocol.py:

`python -m conformance.worker FRAMEWORK [--modes A,B]` is a worker; its hello lists every mode
and prepares (settings, or why it cannot run) only those asked for (chosen_modes): compile's
settings cost seconds a process (Inductor's ISA check), which an eager run must not pay.

Hello:   {"hello": Hello} or {"hello": null, "message"}; a spare forked by the fork server
         says only its framework and devices (the runner keeps the first hello)
Request: a Request: every task (dtype, API, device, mode) of one case
Started: {"started": true}, once the request is read, before its first task: a worker that dies
         before saying it (killed between tasks: the OOM killer, a user) ran none of them
Replies: one Reply per task, in order; after a fatal reply the worker exits. Each "ok" output's
         `nbytes` bytes follow the line, in the order of OUTPUTS.

`python -m conformance.worker --fork-server FRAMEWORK [--modes A,B] --channel FD` is the fork server of a
framework whose workers fork (torch): it imports the framework once, touching no device, runs the
`preload` of the modes the run asks for (a compiler's imports), says {"ready": true, "preloaded":
[modes]}, then for each line {"suites": [...], "spare": bool} takes the two pipe ends the runner
sent before it on the Unix socket `--channel FD` (SCM_RIGHTS: the child's requests, its
replies), forks a worker speaking the protocol above over them and answers {"pid": N}. A
forked worker starts in milliseconds where a new interpreter takes seconds (a CUDA device-side
assert poisons its process: the next worker must come fast), and initialises its device itself.

XENT_TEST_FATAL_CASES (a test's switch; comma-separated globs on case ids): every task of those
cases dies as a device-side assert does, a fatal reply, so that the runner's handling of fatal
errors is tested and measured on a machine without a GPU.
"""
from __future__ import annotations

import functools
import gc
import json
import os
import signal
import socket
import sys
import traceback
from dataclasses import replace
from fnmatch import fnmatchcase
from importlib import metadata

from reference.golden import OUTPUTS, load_suite

from . import adapters
from .adapters.base import prepare, restore, to_bits, unsupported_output, unsupported_reason
from .protocol import ApiInfo, DeviceInfo, Hello, ModeInfo, Output, Recipe, Reply, Request, TaskRequest, chosen_modes


class AdapterError(Exception):
    """An exception raised by the adapter's own code, not by the framework's API."""


class SimulatedFatalError(RuntimeError):
    """XENT_TEST_FATAL_CASES: a task that dies as a CUDA device-side assert does."""


@functools.cache
def _prctl():
    """libc's prctl, found once (a fork server's children find it found: 0.7 ms each otherwise)."""
    import ctypes
    return ctypes.CDLL("libc.so.6", use_errno=True).prctl


def die_with_parent() -> None:
    """On Linux, SIGKILL when the parent dies (even a stopped child)."""
    try:
        _prctl()(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the runner's own cleanup is what stops workers


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:400]}"


def _encode(value) -> Output:
    if isinstance(value, Output):  # already a status (unsupported)
        return value
    if isinstance(value, BaseException):
        return Output("raised", type=type(value).__name__, message=_describe(value))
    dtype, bits = to_bits(value)
    data = bits.tobytes()
    return Output("ok", dtype, list(bits.shape), len(data), data=data)


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


def describe(framework: str) -> Hello:
    """The hello, less its devices: what a fork server computes once for all its children."""
    adapter = adapters.load(framework)
    return Hello(framework, adapter.version(), installed_versions(adapter.distributions),
                 apis=[ApiInfo(a.name, a.op, a.code, a.class_axis, a.unbatched, a.weight_as, Recipe(**adapter.recipe(a)))
                       for a in adapter.apis],
                 modes=[ModeInfo(m.name, m.about, m.repro) for m in adapter.modes],
                 domain_errors=list(adapter.domain_errors))


def _prepared(adapter, info: ModeInfo) -> ModeInfo:
    """The mode with its settings, or marked unavailable: a compiler that cannot set up here (a
    missing setuptools under torch 2.9, no C++ compiler) takes its mode out, not the framework."""
    if info.unavailable:
        return info
    try:
        return replace(info, settings=adapter.mode(info.name).settings())
    except Exception as e:  # noqa: BLE001 (any failure of the mode's own set-up)
        return replace(info, unavailable=_describe(e))


def serve(framework: str, reply, suites: dict | None = None, described: Hello | None = None,
          modes: tuple[str, ...] | None = None) -> None:
    """`suites`: suite folder -> {case id: GoldenCase}, and `described`: describe(framework),
    when already made (a fork server's); `modes`: those the run asks for, the ones prepared."""
    try:
        adapter = adapters.load(framework)
        apis = {api.name: api for api in adapter.apis}
        hello = described if described is not None else describe(framework)
        # the devices and the modes' settings are the worker's own business: a fork server
        # never touches a device, nor initialises a compiler
        hello.devices = [DeviceInfo(d.id, d.label, d.name) for d in adapter.devices()]
        asked = chosen_modes(hello.mode_names(), modes)
        hello.modes = [_prepared(adapter, m) if m.name in asked else m for m in hello.modes]
    except Exception as e:  # not installed, or broken: the runner skips this framework
        reply({"hello": None, "message": _describe(e)})
        return
    reply({"hello": hello.to_json()})
    # what the imports made stays: out of the collector's way (as a fork server's is). A compiled
    # mode's graph loads make many short-lived objects: Python's default young-generation
    # threshold (700) collected 2,300 times in a torch compile run, 3.5 s of its 19; this, 450
    # times, 0.9 s (in one process, gc callbacks timing each collection)
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)

    suites = dict(suites or {})
    for line in sys.stdin:
        req = Request.from_json(json.loads(line))
        if req.suite not in suites:
            suites[req.suite] = {c.id: c for c in load_suite(req.suite)}
        case = suites[req.suite][req.case]
        reply({"started": True})  # the request is ours now: a death from here on is a task's
        arrays = inputs(case, {t.dtype for t in req.tasks})  # one request holds every task of its case
        for task in req.tasks:
            if _fatal(case.id):
                out = dict.fromkeys(OUTPUTS, SimulatedFatalError("CUDA error: device-side assert triggered "
                                                                  "(simulated: XENT_TEST_FATAL_CASES)"))
            else:
                out = _run_task(adapter, apis[task.api], case, arrays, task)
            fatal = any(isinstance(v, SimulatedFatalError) or isinstance(v, BaseException) and adapter.is_fatal(v)
                        for v in out.values())
            answer = Reply({o: _encode(out[o]) for o in OUTPUTS}, fatal)
            reply(answer.to_json(), [answer.outputs[o].data for o in OUTPUTS])
            if fatal:
                return


@functools.cache
def _fatal_globs() -> tuple[str, ...]:
    """XENT_TEST_FATAL_CASES (the module docstring), read once a process (a fork server's
    children inherit its environment, and so its reading)."""
    return tuple(g for g in os.environ.get("XENT_TEST_FATAL_CASES", "").split(",") if g)


def _fatal(case_id: str) -> bool:
    """This case's tasks die as a device assert does (XENT_TEST_FATAL_CASES)."""
    return any(fnmatchcase(case_id, g) for g in _fatal_globs())


def _run_task(adapter, api, case, arrays, task) -> dict:
    reason = unsupported_reason(api, case)
    if reason:
        return dict.fromkeys(OUTPUTS, Output("unsupported", message=reason))
    lacking = {o: unsupported_output(adapter, api, task.dtype, o) for o in OUTPUTS}
    if all(lacking.values()):
        return {o: Output("unsupported", message=lacking[o]) for o in OUTPUTS}
    try:
        inputs = prepare(api, case, arrays, task.dtype)
        out = adapter.execute(api, inputs, task.device, task.mode)
        return {o: Output("unsupported", message=lacking[o]) if lacking[o]
                else v if isinstance(v, BaseException) else restore(api, case, o, v) for o, v in out.items()}
    except Exception as e:  # a bug of ours, not the framework's: say so plainly
        traceback.print_exc()
        return {o: AdapterError(f"adapter error: {_describe(e)}") for o in OUTPUTS}


def _protocol():
    """The replies' stream: a private copy of stdout; stdout itself then goes to stderr, so
    whatever the framework prints cannot corrupt the protocol."""
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(message: dict, data: list[bytes] = ()) -> None:
        protocol.write(json.dumps(message).encode() + b"\n")
        for chunk in data:
            protocol.write(chunk)
        protocol.flush()

    return protocol, reply


def main(framework: str, suites: dict | None = None, described: Hello | None = None,
         modes: tuple[str, ...] | None = None) -> None:
    serve(framework, _protocol()[1], suites, described, modes)


MADV_COLLAPSE = 25  # linux/mman.h (Linux 6.1+): back a range with huge pages now


def _on_huge_pages() -> None:
    """The fork server's private memory (Python's arenas, the framework's allocations) moved onto
    2 MB pages where the kernel can: each fork then copies a page-table entry per 2 MB instead of
    per 4 kB, and each child's exit frees as many fewer. How memory is laid out, never what is
    computed; where the kernel cannot (an older one, a range it declines: EINVAL), nothing
    changes. About 60 ms, once."""
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/maps") as maps:  # Linux's
            regions = [line.split() for line in maps]
    except (OSError, AttributeError):  # not Linux
        return
    huge = 2 << 20
    for fields in regions:  # private, writable, anonymous (no file; the heap is anonymous too)
        if fields[1] != "rw-p" or len(fields) > 5 and fields[5] != "[heap]":
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        start, end = -(-start // huge) * huge, end // huge * huge  # the whole 2 MB pages inside
        if end > start:
            libc.madvise(start, end - start, MADV_COLLAPSE)


REHEARSALS = 16  # Python 3.11 quickens a function's code after 8 calls


def _rehearse(framework: str, suite: str, case) -> None:
    """What each child does around its task, done here first (pure Python and numpy: no device,
    no framework call): reading a case (zipfile imports its cp437 codec, 1-2 ms), the messages.
    Python quickens a function's code in place after its first calls: done in a child, that
    writes to memory it shares with the server, and each page written is copied (COW)."""
    for _ in range(REHEARSALS if case is not None else 0):
        inputs(case, set(case.dtypes))
        request = Request(suite, case.id, [TaskRequest(d, "api", "device", "mode") for d in case.dtypes])
        Request.from_json(json.loads(json.dumps(request.to_json())))
        json.dumps({"hello": Hello(framework).to_json()})
        json.dumps(Reply({o: _encode(SimulatedFatalError("rehearsal")) for o in OUTPUTS}, True).to_json())
        _fatal(case.id)


def fork_server(framework: str, modes: tuple[str, ...] | None, channel: int) -> None:
    """Forks a worker per request (module docstring); never touches a device itself, so that
    each child initialises CUDA afresh. `modes`: those the run asks for (chosen_modes), whose
    `preload` it runs once for all its children; `channel`: the Unix socket on which the runner
    passes each child's two pipe ends."""
    protocol, reply = _protocol()
    channel = socket.socket(fileno=channel)
    try:
        described = describe(framework)
        adapter = adapters.load(framework)
        preloaded, unavailable = [], {}
        for name in chosen_modes([m.name for m in adapter.modes], modes):
            try:
                adapter.mode(name).preload()
                preloaded.append(name)
            except Exception as e:  # noqa: BLE001 (that mode cannot run here; the others can)
                unavailable[name] = _describe(e)
        described.modes = [replace(m, unavailable=unavailable.get(m.name, "")) for m in described.modes]
    except Exception as e:
        reply({"ready": False, "message": _describe(e)})
        return
    _on_huge_pages()
    try:
        _prctl()  # found once, for every child
    except (OSError, AttributeError):
        pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    gc.freeze()  # the children's collections leave the server's objects alone: fewer pages copied
    reply({"ready": True, "preloaded": preloaded})
    loaded: dict[str, dict] = {}
    for line in sys.stdin:
        asked = json.loads(line)
        _, pipes, _, _ = socket.recv_fds(channel, 1, 2)  # sent before the line: the child's two ends
        for suite in asked.get("suites", ()):  # each child finds them loaded
            if suite not in loaded:
                loaded[suite] = {c.id: c for c in load_suite(suite)}
                try:  # only a head start: a child reports a bad file itself
                    _rehearse(framework, suite, next(iter(loaded[suite].values()), None))
                except Exception:  # noqa: BLE001
                    pass
                _on_huge_pages()  # loading it broke 25-30 MB of them back into 4 kB pages
                gc.freeze()  # its objects too: out of the children's collections
        pid = os.fork()
        if pid == 0:  # the child: a worker on the two pipes the runner made
            code = 0
            try:
                die_with_parent()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                protocol.close()  # the fork server's reply stream is not the child's
                channel.close()
                requests, replies = pipes
                os.dup2(requests, 0)
                os.dup2(replies, 1)
                os.close(requests)
                os.close(replies)
                sys.stdin = os.fdopen(0, "r")  # not the fork server's buffered stdin
                # a spare's hello is brief: the runner keeps its first worker's
                main(framework, loaded, Hello(framework) if asked.get("spare") else described, modes)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        for end in pipes:  # the child's now: the runner sees its replies end when the child does
            os.close(end)
        reply({"pid": pid})


if __name__ == "__main__":
    server = sys.argv[1] == "--fork-server"
    framework, *rest = sys.argv[1 + server:]  # FRAMEWORK [--modes A,B] [--channel FD]
    options = dict(zip(rest[::2], rest[1::2]))
    asked_modes = tuple(options["--modes"].split(",")) if "--modes" in options else None
    if server:
        fork_server(framework, asked_modes, int(options["--channel"]))
    else:
        main(framework, modes=asked_modes)
