"""Run golden suites against frameworks: one worker process per framework, run side by
side, each task with a timeout; a crash or hang becomes a `crashed` row and the worker
is restarted, so one framework's failure never loses the others' results."""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from fnmatch import fnmatchcase
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reference.formats import FORMATS
from reference.golden import OUTPUTS, GoldenCase, GoldenFileError, load_suite

from . import repro, verdicts
from .worker import die_with_parent
from .protocol import DeviceInfo, Hello, Output, Reply, Request, TaskRequest, chosen_modes
from .expectations import NO_WITNESSES, Expectation, Matcher, Witnesses
from .suites import cache_dir
from .results import NO_API, ResultRow, Runtime, Task, describe_inputs, error_rows, row_features, rows_for, suite_hash

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 180.0
LOCAL = "local"  # the runtime that is the interpreter running xent
# A worker shares the cores with the runner (which classifies while it computes) and with the
# other workers: OpenMP threads that spin while idle (libgomp's default, torch's CPU pool) then
# hold a core the others need, and a tiny op waits on a descheduled thread (about 10x slower on
# 2 cores). Sleeping instead changes how idle threads wait, never how work is split, so no bit
# of a result; a value the user set wins.
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


class WorkerGone(Exception):
    def __init__(self, message: str, started: bool = True):
        super().__init__(message)
        self.started = started  # False: it died before it said the request last sent started




@dataclass(frozen=True)
class RuntimeSpec:
    """An interpreter a framework's worker runs under, by a stable name."""

    name: str
    python: str
    env: tuple[tuple[str, str], ...] = ()  # variables its workers get besides the caller's (threads)


def code_path(runtime: RuntimeSpec) -> Path:
    """What puts this project's code on a worker's path. The local runtime takes the folder
    holding the packages; another interpreter gets a folder with links to just `reference`
    and `conformance`, so nothing else of this environment leaks into it."""
    if runtime.name == LOCAL:
        return REPO_ROOT
    tag = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:12]
    linked = Path(tempfile.gettempdir()) / f"xent-conformance-code-{os.getuid()}-{tag}"
    linked.mkdir(exist_ok=True)
    for package in ("reference", "conformance"):
        link = linked / package
        if not link.exists():
            try:
                link.symlink_to(REPO_ROOT / package, target_is_directory=True)
            except FileExistsError:  # another thread made it
                pass
    return linked


class Worker:
    """A framework's worker process with a line-reading thread, so replies can time out.

    A framework whose registry entry `forks` (its import starts no thread and touches no device:
    torch) gets its workers from a fork server, started once: a worker killed by a fatal error
    (a CUDA device-side assert) is replaced in milliseconds, not the seconds a new interpreter
    and framework import take."""

    def __init__(self, framework: str, log_path: Path, runtime: "RuntimeSpec | None" = None,
                 forks: bool | None = None, modes: tuple[str, ...] | None = None):
        self.framework, self.log_path = framework, log_path
        self.modes = modes  # the modes asked for (chosen_modes): the only ones its processes prepare
        self.runtime = runtime or RuntimeSpec(LOCAL, sys.executable)
        self.forks = _forks(framework) if forks is None else forks
        self.server: ForkServer | None = None
        self.proc: subprocess.Popen | ForkedProcess | None = None
        self.hello: Hello | None = None
        self.message = ""
        self.started = True  # it said it started the request last sent (worker: "started")

    def start(self) -> bool:
        self.launch()
        return self.ready()

    def launch(self) -> None:
        """Start the process (with `forks`, the fork server: `ready` forks the worker); `ready`
        waits for its hello (meanwhile the runner prepares cases)."""
        if not self.forks:
            self.adopt(_popen(self.runtime, ["-m", "conformance.worker", self.framework, *_modes_args(self.modes)],
                              self.log_path))
        elif self.server is None or self.server.proc.poll() is not None:
            self.server = ForkServer(self)

    def adopt(self, proc) -> None:
        """Talk to this process (a new interpreter, or a child of the fork server)."""
        self.proc, self.hello = proc, None
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc.stdout, self.replies), daemon=True).start()

    def take_over(self, spare: "Worker") -> None:
        """Become a started spare: its process and the replies it reads (the hello stays the
        first worker's: a spare's says only its devices)."""
        self.proc, self.message, self.replies = spare.proc, spare.message, spare.replies

    def ready(self) -> bool:
        if self.hello is not None and self.proc is not None and self.proc.poll() is None:
            return True  # started before, and alive: a caller that keeps a worker across runs
        try:
            if self.forks and (self.proc is None or self.proc.poll() is not None):
                self.adopt(self.server.fork())
            first = self.receive(STARTUP_TIMEOUT)
        except WorkerGone as e:
            self.hello, self.message = None, f"worker did not start: {e}"
            return False
        self.hello = Hello.from_json(first["hello"]) if first.get("hello") else None
        self.message = first.get("message", "")
        return self.hello is not None

    def starting(self) -> bool:
        """Whether the hello has not come yet (nor the process's end)."""
        if self.proc is None:  # a fork server's worker: not forked before the server is ready
            return self.server is not None and self.server.starting()
        return self.replies.empty()

    @staticmethod
    def _read(stream, replies):
        """Replies as the worker writes them: a JSON line, then the bytes of each "ok" output."""
        while line := stream.readline():
            message = json.loads(line)
            if "outputs" not in message:  # the hello, or {"started": true}
                replies.put(message)
                continue
            reply = Reply.from_json(message)
            for output in (reply.outputs[o] for o in OUTPUTS):
                if output.status == "ok":
                    output.data = stream.read(output.nbytes)
                    if len(output.data) < output.nbytes:  # cut off: the worker died
                        replies.put(None)
                        return
            replies.put(reply)
        replies.put(None)

    def receive(self, timeout: float):
        """The next message: a Reply, or the hello's dict."""
        try:
            reply = self.replies.get(timeout=timeout)
            while isinstance(reply, dict) and reply.get("started"):  # it read the request last sent
                self.started = True
                reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise WorkerGone(f"no answer in {timeout:g} s (hung); worker killed") from None
        if reply is None:
            code = self.proc.wait()
            raise WorkerGone(f"worker exited with code {code} (see {self.log_path.name})", self.started)
        return reply

    def send(self, request: Request) -> None:
        self.started = False
        try:
            self.proc.stdin.write(json.dumps(request.to_json()).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the reader reports the exit

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        """Stop the worker and its fork server (whose other children die with it)."""
        self.stop()
        if self.server is not None:
            self.server.stop()


def _forks(framework: str) -> bool:
    from .adapters import registry
    entry = registry().get(framework)
    return bool(entry and entry.forks)


def _modes_args(modes: tuple[str, ...] | None) -> list[str]:
    """The modes asked for, on a worker's (or fork server's) command line: it prepares only those."""
    return ["--modes", ",".join(modes)] if modes else []


def _popen(runtime: "RuntimeSpec", args: list[str], log_path: Path, extra_env: dict | None = None,
           pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """A worker's (or fork server's) interpreter, with its environment and log."""
    path = os.pathsep.join(filter(None, [str(code_path(runtime)), os.environ.get("PYTHONPATH")]))
    # compilers' caches in the user cache folder (a value the user set wins): a second run compiles nothing
    env = {**WORKER_ENV, "XENT_JAX_CACHE": str(cache_dir() / "jax"), "TORCHINDUCTOR_CACHE_DIR": str(cache_dir() / "inductor"),
           **os.environ,
           # PYTHONSAFEPATH: `python -m` would put the working folder first on the path, where a
           # user's project may have a package of ours' names (`reference`): never imported here
           "PYTHONUNBUFFERED": "1", "PYTHONSAFEPATH": "1", "PYTHONPATH": path, **dict(runtime.env), **(extra_env or {})}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        return subprocess.Popen([runtime.python, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                # SIGKILL when the parent dies; its own session keeps a terminal's
                                # Ctrl-C for the parent, which stops the workers itself
                                env=env, preexec_fn=die_with_parent, start_new_session=True, pass_fds=pass_fds)


def _tunables() -> str:
    """glibc's malloc on transparent huge pages in a fork server: a fork copies a page-table
    entry per 2 MB instead of per 4 kB (torch's import leaves about 150 MB of heap: a fork took
    6.7 ms, 2.4 ms so). How memory is laid out, never what is computed; a value the user set
    comes first."""
    given = os.environ.get("GLIBC_TUNABLES", "")
    return given if "glibc.malloc.hugetlb" in given else ":".join(filter(None, [given, "glibc.malloc.hugetlb=1"]))


class ForkedProcess:
    """A worker forked by the fork server: not our child, so it is watched by its pid (the fork
    server has the kernel reap it) and spoken to through two pipes the runner made."""

    def __init__(self, pid: int, stdin, stdout):
        self.pid, self.stdin, self.stdout = pid, stdin, stdout
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except (ProcessLookupError, PermissionError):  # gone (or its pid reused by another user)
                self.returncode = -1  # its exit status went to the fork server
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.returncode is None:  # gone for us now, whenever the kernel finishes its exit
            self.returncode = -signal.SIGKILL

    def wait(self):
        """Close our ends of its pipes. Nothing to wait for: the kernel reaps it for the fork
        server, and its exit (tearing down a framework's memory) goes on without holding the run.
        It is gone for us from here: one whose replies ended may still be exiting (or a zombie
        that `poll` cannot tell from a live process, its fork server dead), and a task sent to it
        would go to a closed pipe; it is killed to be sure."""
        if self.poll() is None:
            self.kill()
        try:  # the reading end stays with the reader thread, which sees the end and lets it go
            self.stdin.close()
        except OSError:
            pass
        return self.returncode


class ForkServer:
    """A framework's fork server (`python -m conformance.worker --fork-server`), for a framework
    whose registry entry `forks`: it imports the framework once and makes each worker in
    milliseconds instead of the seconds a new interpreter and framework import take (a CUDA
    device assert costs a worker). Each new worker's two pipes are made here and their far ends
    passed to the server over a Unix socket (SCM_RIGHTS): no named pipes, nothing on disk."""

    FORK_TIMEOUT = 30.0

    def __init__(self, worker: Worker):
        self.channel, theirs = socket.socketpair()
        try:
            self.proc = _popen(worker.runtime, ["-m", "conformance.worker", "--fork-server", worker.framework,
                                                *_modes_args(worker.modes), "--channel", str(theirs.fileno())],
                               worker.log_path, {"GLIBC_TUNABLES": _tunables()}, pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        self.ready: bool | None = None
        self.message = ""
        self.preloaded: list[str] = []  # the modes whose `preload` it ran
        self.suites: list[str] = []  # suite folders the server loads once for all its children
        self.lock = threading.Lock()
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while line := self.proc.stdout.readline():
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def _line(self, timeout: float) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise WorkerGone(f"the fork server gave no answer in {timeout:g} s; killed") from None
        if line is None:
            raise WorkerGone(f"the fork server exited with code {self.proc.wait()}")
        return line

    def starting(self) -> bool:
        return self.ready is None and self.lines.empty()

    def fork(self, timeout: float = STARTUP_TIMEOUT, spare: bool = False) -> ForkedProcess:
        """A new worker; a `spare` says only its devices in its hello (the runner has the rest)."""
        requests, to_child = os.pipe()  # the child reads its requests from `requests`,
        from_child, replies = os.pipe()  # and writes its replies to `replies` (ours: close-on-exec)
        try:
            with self.lock:  # one request, one answer: the server forks one child at a time
                if self.ready is None:
                    first = self._line(timeout)
                    self.ready, self.message = bool(first.get("ready")), first.get("message", "")
                    self.preloaded = first.get("preloaded", [])
                if not self.ready:
                    raise WorkerGone(f"the fork server did not start: {self.message}")
                try:  # the child's ends first: the server takes them when it reads the line
                    socket.send_fds(self.channel, [b"w"], [requests, replies])
                    self.proc.stdin.write(json.dumps({"suites": self.suites, "spare": spare}).encode() + b"\n")
                    self.proc.stdin.flush()
                except OSError as e:  # it died
                    raise WorkerGone(f"the fork server is gone ({e.strerror})") from None
                pid = self._line(min(timeout, self.FORK_TIMEOUT))["pid"]
        except BaseException:
            os.close(to_child)
            os.close(from_child)
            raise
        finally:  # the server holds the child's ends now (they were copied when sent)
            os.close(requests)
            os.close(replies)
        return ForkedProcess(pid, os.fdopen(to_child, "wb"), os.fdopen(from_child, "rb"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.channel.close()


class Spares:
    """Warm spare workers of a framework whose workers come from a fork server: after a worker
    dies (a fatal error, a crash), the next task goes to a spare that is already started, and
    the next spare is forked in the background."""

    DEPTH = 4  # spares kept started: fatal tasks come in runs (every task of an out-of-range case)

    def __init__(self, worker: Worker, control: "Control"):
        self.worker, self.control = worker, control
        self.queue: list = []  # futures of started spares, oldest first
        self.pool = None
        self.lock = threading.Lock()

    def _spare(self) -> Worker:
        spare = Worker(self.worker.framework, self.worker.log_path, self.worker.runtime, forks=False)
        spare.adopt(self.worker.server.fork(spare=True))
        with self.control.lock:
            self.control.workers.add(spare)
        spare.ready()
        return spare

    def take(self, worker: Worker) -> bool:
        """Put a started spare in `worker`'s place (any lane's); False when none could be made
        (the caller then starts a new worker, as before)."""
        if self.worker.server is None or self.worker.server.proc.poll() is not None:
            return False  # a framework not forked from a server: a new interpreter, as before
        try:
            with self.lock:  # lanes side by side take spares from one queue
                if self.pool is None:
                    self.pool = ThreadPoolExecutor(2, thread_name_prefix=f"xent-spares-{self.worker.framework}")
                while len(self.queue) < self.DEPTH:
                    self.queue.append(self.pool.submit(self._spare))
                future = self.queue.pop(0)
                self.queue.append(self.pool.submit(self._spare))  # the next one starts now
            spare = future.result()
        except Exception:  # no fork server here (no fork, no Unix sockets): restart as before
            return False
        with self.control.lock:
            self.control.workers.discard(spare)
        if spare.hello is None:
            spare.stop()
            return False
        worker.take_over(spare)
        return True

    def close(self) -> None:
        for future in self.queue:
            future.cancel()
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        for future in self.queue:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().stop()
                with self.control.lock:
                    self.control.workers.discard(future.result())


@dataclass
class FrameworkRun:
    framework: str
    runtime: str = LOCAL
    version: str = ""
    skipped: str = ""  # why it did not run (not installed, ...)
    error: str = ""  # why it stopped early (an error of ours), its rows kept
    rows: list[ResultRow] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # expectations whose witnesses ran and that explained nothing
    used: list[str] = field(default_factory=list)  # expectations that explained a row
    witnessed: list[str] = field(default_factory=list)  # expectations a witness row of which ran
    modes: list[str] = field(default_factory=list)  # the execution modes it ran
    available_modes: list[str] = field(default_factory=list)  # the modes its adapter has
    unavailable: dict[str, str] = field(default_factory=dict)  # mode asked for -> why it cannot run here
    planned: int = 0  # tasks it was to run
    done: int = 0  # tasks it ran
    restarts: int = 0  # workers that died (fatal errors, crashes) and were replaced
    spares_used: int = 0  # of those, replaced by a started spare (Spares), not a new interpreter
    golden_errors: list[str] = field(default_factory=list)


def _observed(output: Output, fatal: bool) -> verdicts.Observed:
    if fatal and output.status == "raised":  # the process is unusable: the worker exits and is restarted
        return verdicts.Observed(verdicts.CRASHED, message=f"fatal, worker restarted: {output.message}")
    if output.status != "ok":
        return verdicts.Observed(output.status, message=output.message, error_type=output.type)
    bits = np.frombuffer(output.data, dtype=FORMATS[output.dtype].storage).reshape(output.shape)
    return verdicts.Observed("ok", output.dtype, bits)


def _all(status: str, message: str) -> dict[str, verdicts.Observed]:
    return {o: verdicts.Observed(status, message=message) for o in OUTPUTS}


class CaseData:
    """What the runner derives from one golden case, each once: its arrays (of the dtypes the
    run takes) and, per dtype, its inputs as rows show them and its expected outputs Prepared
    for the classifier (verdicts.prepare)."""

    def __init__(self, case: GoldenCase, dtypes: set[str] | None):
        def keep(name: str) -> bool:  # "input.float32", "expected.float32.canonical.loss"; "target" has none
            dtype = name.partition(".")[2].partition(".")[0]
            return dtypes is None or not dtype or dtype in dtypes

        self.case, self.arrays = case, case.arrays_where(keep)
        self.lock, self.by_dtype, self.taken = threading.Lock(), {}, 0

    def for_dtype(self, dtype: str) -> tuple[str, dict | None, str]:
        """(describe_inputs, verdicts.prepare, row_features) of the case in one dtype."""
        with self.lock:
            found = self.by_dtype.get(dtype)
            if found is None:
                found = self.by_dtype[dtype] = (describe_inputs(self.case, self.arrays, dtype),
                                                verdicts.prepare(self.case, self.arrays, dtype),
                                                row_features(self.case, self.arrays, dtype))
        return found

    def warm(self, dtypes) -> None:
        """Everything classification derives from the case alone, ahead of its observations."""
        for dtype in dtypes:
            prepared = self.for_dtype(dtype)[1]
            for output in (prepared or {}).values():
                output.ref("canonical")


class CaseCache:
    """CaseData shared by the framework threads of a run, each case's held until every thread
    has taken it (computed once, not once per framework), and filled ahead while the workers
    start; off (each thread derives its current case alone) for suites too large to hold."""

    LIMIT_BYTES = 64 * 2**20  # of golden files on disk (the default suite's 4.8 MB hold about 18 MB)

    def __init__(self, enabled: bool, dtypes: set[str] | None = None, users: int = 1):
        self.enabled, self.dtypes, self.users = enabled, dtypes, users
        self.store: dict[tuple, CaseData] = {}
        self.lock = threading.Lock()

    def _get(self, case: GoldenCase, key: tuple) -> CaseData:
        with self.lock:
            found = self.store.get(key)
        if found is None:
            made = CaseData(case, self.dtypes)
            with self.lock:
                found = self.store.setdefault(key, made)
        return found

    def prefetch(self, case: GoldenCase) -> None:
        if not self.enabled:
            return
        try:
            self._get(case, (str(case.path), case.entry["sha256"])).warm(
                [d for d in case.dtypes if self.dtypes is None or d in self.dtypes])
        except Exception:  # the case's tasks meet the error again, and it becomes their rows
            pass

    def take(self, case: GoldenCase) -> CaseData:
        """The case's data for one framework thread."""
        if not self.enabled:
            return CaseData(case, self.dtypes)
        key = (str(case.path), case.entry["sha256"])
        found = self._get(case, key)
        with self.lock:
            found.taken += 1
            if found.taken >= self.users:
                self.store.pop(key, None)
        return found


@dataclass
class Control:
    """What the caller shares with the framework threads: a stop request (SIGINT, SIGTERM), the
    live workers (killed at once on stop), and a sink that writes each task's rows as they come."""

    stop: threading.Event = field(default_factory=threading.Event)
    workers: set = field(default_factory=set)
    sink: object = None  # callable(list[ResultRow]) or None
    lock: threading.Lock = field(default_factory=threading.Lock)
    cases: CaseCache = field(default_factory=lambda: CaseCache(False))

    def request_stop(self) -> None:
        self.stop.set()
        with self.lock:
            for worker in list(self.workers):
                worker.close()


def run_framework(framework: str, suites: list[tuple[str, list[GoldenCase]]], *, out_dir: Path,
                  timeout: float, expectations: list[Expectation] = (), progress=None,
                  dtypes: set[str] | None = None, runtime: RuntimeSpec | None = None,
                  devices: tuple[str, ...] | None = None, control: Control | None = None,
                  result: FrameworkRun | None = None, suite_hashes: dict[str, str] | None = None,
                  worker: Worker | None = None, witnesses: Witnesses = NO_WITNESSES,
                  use_spares: bool = True, modes: tuple[str, ...] | None = None, lanes: int = 1,
                  apis: set[str] | None = None, keep_worker: bool = False) -> FrameworkRun:
    """One framework's tasks through its worker (`worker`: one already launched by run());
    `use_spares`: replace a worker killed by a fatal error with a started spare (Spares);
    `modes`: the execution modes (chosen_modes); `lanes`: workers side by side, each taking the
    next case; `apis`: only these of its APIs; `keep_worker`: leave the worker running for the
    caller's next run (a search's many small runs)."""
    runtime = runtime or RuntimeSpec(LOCAL, sys.executable)
    control = control or Control()
    result = result or FrameworkRun(framework, runtime.name)
    worker = worker or _worker(framework, runtime, out_dir, modes)
    with control.lock:
        control.workers.add(worker)
    spares = Spares(worker, control) if use_spares else None
    try:
        _run_tasks(worker, framework, suites, result, timeout=timeout, expectations=expectations, progress=progress,
                   dtypes=dtypes, runtime=runtime, devices=devices, control=control, suite_hashes=suite_hashes,
                   witnesses=witnesses, out_dir=out_dir, spares=spares, modes=modes, lanes=lanes, apis=apis)
    finally:
        if spares is not None:
            spares.close()
        if not keep_worker:
            worker.close()
            with control.lock:
                control.workers.discard(worker)
    return result


def _worker(framework: str, runtime: RuntimeSpec, out_dir: Path, modes: tuple[str, ...] | None) -> Worker:
    log_name = f"worker-{framework}.log" if runtime.name == LOCAL else f"worker-{runtime.name}-{framework}.log"
    return Worker(framework, out_dir / log_name, runtime, modes=modes)


def device_name(name: str, settings: str) -> str:
    """The results' device_name: the device, and what else decides a mode's numbers."""
    return f"{name}; {settings}" if settings else name


def _run_tasks(worker, framework, suites, result, *, timeout, expectations, progress, dtypes, runtime, devices,
               control, suite_hashes, witnesses, out_dir, spares=None, modes=None, lanes: int = 1,
               apis: set[str] | None = None) -> None:
    if worker.proc is None:
        worker.launch()
    for case in (c for _, cases in suites for c in cases) if control.cases.enabled else ():
        if not worker.starting() or control.stop.is_set():  # never delays the first task
            break
        control.cases.prefetch(case)  # while the worker imports its framework
    if not worker.ready():
        result.skipped = worker.message
        return
    hello = worker.hello
    if worker.server is not None:  # its later workers find the suites loaded
        worker.server.suites = [suite for suite, _ in suites]
    result.version = hello.version
    result.available_modes = hello.mode_names()
    chosen_names = chosen_modes(result.available_modes, modes)
    result.unavailable = {m.name: m.unavailable for m in hello.modes if m.name in chosen_names and m.unavailable}
    result.modes = [m for m in chosen_names if m not in result.unavailable]
    if not chosen_names:
        result.skipped = f"{framework} has no mode {', '.join(modes)} (its modes: {', '.join(hello.mode_names())})"
        return
    if not result.modes:
        result.skipped = "; ".join(f"mode {m} cannot run here: {why}" for m, why in result.unavailable.items())
        return
    matcher = Matcher.build(expectations, framework, hello.versions, witnesses)
    rt = Runtime(framework, hello.version, hello.versions, runtime.name, tuple(hello.domain_errors))
    apis_for: dict[str, list[str]] = {}
    for api in hello.apis:
        if apis is None or api.name in apis:
            apis_for.setdefault(api.op, []).append(api.name)
    # each API's layout and reproducer recipe, as the worker described them
    layouts = {a.name: a.layout() for a in hello.apis}
    recipes = {a.name: a.recipe for a in hello.apis if a.recipe}
    mode_info = {m.name: m for m in hello.modes}
    no_device = [DeviceInfo("-", "-", "-")]
    chosen = [d for d in hello.devices if devices is None or any(fnmatchcase(d.label, p) for p in devices)]
    # an op the framework has no API for is one `unsupported` row per dtype and mode, on no device
    hashes = suite_hashes or {suite: suite_hash(cases) for suite, cases in suites}
    tasks = [Task(Path(suite).name, hashes[suite], case, dtype, api, device.label,
                  device_name(device.name, mode_info[mode].settings if mode in mode_info else ""), device.id, mode)
             for suite, cases in suites for case in cases
             for dtype in case.dtypes if dtypes is None or dtype in dtypes
             for api, device_list, task_modes in ([(a, chosen, result.modes) for a in apis_for[case.op]]
                                                  if case.op in apis_for else [(NO_API, no_device, result.modes)])
             for mode in task_modes
             for device in device_list]
    result.planned = len(tasks)
    suite_dir = {Path(suite).name: suite for suite, _ in suites}
    if progress:
        progress(0, len(tasks))
    recording = threading.Lock()  # lanes record side by side: one at a time

    def record(task: Task, observed: dict, loaded: dict) -> None:
        """Classify one task's observation (while the worker computes the next) and keep its rows."""
        with recording:
            _record(task, observed, loaded)

    def _record(task: Task, observed: dict, loaded: dict) -> None:
        case = task.case
        try:
            if loaded.get("key") != (task.suite, case.id):  # tasks come case by case: take each case once
                loaded.update(key=(task.suite, case.id), data=control.cases.take(case))
            data = loaded["data"]
            inputs, prepared, features = data.for_dtype(task.dtype)
            rows = rows_for(task, data.arrays, inputs, observed, rt, matcher, prepared, features)
            if task.api in recipes and any(r.verdict not in (verdicts.CONFORMS, verdicts.UNSUPPORTED) for r in rows):
                try:
                    text, arrays = repro.script(recipes[task.api], layouts[task.api], case, data.arrays, task.dtype,
                                                task.device_id, rows, mode_info[task.mode].repro)
                    if arrays:  # a large case: its arrays beside the script, written now (the run has them)
                        repro.write_data(arrays, out_dir, framework)
                except Exception as e:  # the measurement stands without its reproducer
                    text = f"# no reproducer: an error of the suite: {type(e).__name__}: {e}\n"
                for row in rows:
                    row.reproducer = text
        except Exception as e:  # one failure, one row per output: the run goes on
            rows = error_rows(task, rt, f"{type(e).__name__}: {e}")
        result.rows += rows
        result.done += 1
        if control.sink:
            control.sink(rows)
        if progress:
            progress(1, 0)

    groups, taking = iter(list(_by_case(tasks))), threading.Lock()

    def lane(worker: Worker) -> None:
        """Cases one after another through one worker, taking the next case left to run."""
        loaded: dict = {}
        while not control.stop.is_set():
            with taking:
                case_tasks = next(groups, None)
            if case_tasks is None:
                return
            _run_case(worker, case_tasks, loaded)

    def _run_case(worker: Worker, case_tasks: list[Task], loaded: dict) -> None:
        for task in (t for t in case_tasks if t.api == NO_API):
            record(task, _all(verdicts.UNSUPPORTED, f"{framework} has no API for {task.case.op}"), loaded)
        # the case's tasks go to the worker in one request; it answers task by task, so each
        # answer is classified here while the worker computes the next
        pending = [t for t in case_tasks if t.api != NO_API]
        resent = False
        while pending and not control.stop.is_set():
            if worker.proc.poll() is not None:  # it died (a fatal error, a crash, a hang killed)
                replaced = spares is not None and spares.take(worker)  # a started spare takes its place
                with recording:  # lanes count side by side
                    result.restarts += 1
                    result.spares_used += replaced
                if not replaced and not worker.start():
                    for task in pending:
                        record(task, _all(verdicts.CRASHED, worker.message), loaded)
                    break
            case = pending[0].case
            worker.send(Request(suite_dir[pending[0].suite], case.id,
                                [TaskRequest(t.dtype, t.api, t.device_id, t.mode) for t in pending]))
            sent, pending = pending, []
            for i, task in enumerate(sent):
                try:
                    reply = worker.receive(timeout)
                except WorkerGone as e:
                    if control.stop.is_set():  # interrupted is not crashed: that task did not run
                        break
                    if not e.started and not resent:  # it died before starting them (killed between
                        pending, resent = sent, True  # tasks): none ran, a new worker takes them all;
                        break  # once: one that dies so again has crashed on them
                    record(task, _all(verdicts.CRASHED, str(e)), loaded)
                    pending = sent[i + 1:]  # a new worker takes the rest
                    break
                record(task, {o: _observed(reply.outputs[o], reply.fatal) for o in OUTPUTS}, loaded)
                if reply.fatal:  # the worker is exiting: the rest go to a started spare, or a new one
                    worker.stop()
                    pending = sent[i + 1:]
                    break

    # more lanes: more workers of the framework, each taking the next case (a compiled mode's
    # cost is in the worker, per graph); their answers are classified here one at a time
    extra = [Worker(framework, worker.log_path, runtime, forks=False, modes=worker.modes) for _ in range(lanes - 1)]
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_extra_lane, args=(w, worker.server, lane, control, errors), daemon=True)
               for w in extra]
    for t in threads:
        t.start()
    lane(worker)
    for t in threads:
        t.join()
    if errors:  # an error of ours in another lane: its case's rows are missing, and the run says why
        raise errors[0]
    result.stale = matcher.stale() if not control.stop.is_set() else []
    result.used, result.witnessed = sorted(matcher.used), sorted(matcher.witnessed)


def _extra_lane(worker: Worker, server, lane, control: "Control", errors: list) -> None:
    """A lane beside the first: its own worker, forked from the first's fork server (milliseconds)
    where it has one, else a new interpreter; closed when the cases run out. A worker that does
    not start takes no case: the other lanes run them all. A fatal error costs it a started spare
    as in the first lane, or a worker forked from that server (`lane` has the spares)."""
    with control.lock:
        control.workers.add(worker)
    try:
        try:
            if server is not None and server.proc.poll() is None:
                worker.forks, worker.server = True, server  # its replacements are forked too
                worker.adopt(server.fork(spare=True))
            else:
                worker.launch()
        except OSError:
            return
        if worker.ready():
            lane(worker)
    except Exception as e:  # noqa: BLE001 (re-raised by the first lane, which the run reports)
        errors.append(e)
    finally:
        worker.stop() if worker.server is server else worker.close()  # the first lane's server stays
        with control.lock:
            control.workers.discard(worker)


def _by_case(tasks: list[Task]):
    """Consecutive runs of tasks of one case (tasks are listed case by case)."""
    group: list[Task] = []
    for task in tasks:
        if group and (task.suite, task.case.id) != (group[0].suite, group[0].case.id):
            yield group
            group = []
        group.append(task)
    if group:
        yield group


def in_shard(suite_dir, case_id: str, shard: tuple[int, int]) -> bool:
    """Shard K of N holds the cases whose (suite, id) hash to K - 1 modulo N: a split that does
    not depend on the order of cases or machines; a case's rows stay together."""
    k, n = shard
    digest = hashlib.sha256(f"{Path(suite_dir).name}/{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n == k - 1


def run(suite_dirs: list[Path], frameworks: list[str], *, out_dir: Path, timeout: float = 120.0,
        expectations: list[Expectation] = (), progress=None, dtypes: set[str] | None = None,
        runtimes: list[RuntimeSpec] | None = None, devices: tuple[str, ...] | None = None,
        control: Control | None = None, shard: tuple[int, int] = (1, 1),
        case_ids: set[str] | None = None, witnesses: Witnesses = NO_WITNESSES,
        use_spares: bool = True, modes: tuple[str, ...] | None = None,
        lanes: int | dict[str, int] = 1) -> list[FrameworkRun]:
    """Every framework under every runtime side by side, each in its own thread driving its
    own worker. Golden files that fail their checksum are left out, named in `golden_errors`
    of the first result; an error in a framework's thread ends only that framework.
    `case_ids` runs only those cases (a pytest selection); `witnesses` decide which expectations
    can be judged stale (expectations.Witnesses); `lanes`: workers per framework (or a framework's
    number), side by side."""
    control = control or Control()
    runtimes = runtimes or [RuntimeSpec(LOCAL, sys.executable)]
    jobs = [(rt, fw) for rt in runtimes for fw in frameworks]
    # workers import their frameworks (seconds) while the golden files are read and checked here
    workers = {(rt.name, fw): _worker(fw, rt, out_dir, modes) for rt, fw in jobs}
    for worker in workers.values():
        with control.lock:
            control.workers.add(worker)
        try:
            worker.launch()
        except OSError:  # an interpreter that cannot start: its framework's thread says so
            worker.proc = None
    try:
        suites, golden_errors, hashes = _checked_suites(suite_dirs, shard, case_ids)
    except BaseException:
        for worker in workers.values():
            worker.close()
        raise
    on_disk = sum(c.path.stat().st_size for _, cases in suites for c in cases)
    control.cases = CaseCache(on_disk < CaseCache.LIMIT_BYTES, dtypes, users=len(jobs))
    results = {(rt.name, fw): FrameworkRun(fw, rt.name) for rt, fw in jobs}
    lock = threading.Lock()

    def locked_progress(done, more):
        if progress:
            with lock:
                progress(done, more)

    def one(rt, fw):
        result = results[(rt.name, fw)]
        try:
            run_framework(fw, suites, out_dir=out_dir, timeout=timeout, expectations=expectations,
                          progress=locked_progress, dtypes=dtypes, runtime=rt, devices=devices, control=control,
                          result=result, suite_hashes=hashes, worker=workers[(rt.name, fw)], witnesses=witnesses,
                          use_spares=use_spares, modes=modes,
                          lanes=lanes.get(fw, 1) if isinstance(lanes, dict) else lanes)
        except Exception as e:  # keep what it measured; say why it stopped
            result.error = f"{type(e).__name__}: {e}"

    threads = [threading.Thread(target=one, args=job, daemon=True) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():  # joined in slices, so signals reach the main thread's handlers
            t.join(0.2)
    runs = [results[(rt.name, fw)] for rt, fw in jobs]
    if runs:
        runs[0].golden_errors = golden_errors
    return runs


def _checked_suites(suite_dirs, shard, case_ids):
    """(suite folder, its chosen cases that pass their checksum) per suite, the failures'
    messages, and each whole suite's hash."""
    suites, golden_errors, hashes = [], [], {}
    for d in suite_dirs:
        cases = load_suite(d)
        hashes[str(Path(d).resolve())] = suite_hash(cases)  # the whole suite's, shards too
        bad = {}
        chosen = [c for c in cases if in_shard(d, c.id, shard) and (case_ids is None or c.id in case_ids)]
        for case in chosen:
            try:
                case.verify()
            except GoldenFileError as e:
                bad[case.id] = str(e)
        golden_errors += bad.values()
        suites.append((str(Path(d).resolve()), [c for c in chosen if c.id not in bad]))
    return suites, golden_errors, hashes


def lanes_for(frameworks: list[str], jobs: int, cpus: int | None = None) -> dict[str, int]:
    """Workers per framework when none is asked for: the CPUs shared among the frameworks run (one
    framework on two cores: two workers; seven: one each), for frameworks whose workers are forked
    from a fork server (a lane costs milliseconds); one for the others (a lane would cost another
    import of the framework, seconds)."""
    share = max(1, (cpus or os.cpu_count() or 1) // max(1, jobs))
    return {f: share if _forks(f) else 1 for f in frameworks}
