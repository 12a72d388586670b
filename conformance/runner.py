"""Run golden suites against frameworks: one worker process per framework, run side by
side, each task with a timeout; a crash or hang becomes a `crashed` row and the worker
is restarted, so one framework's failure never loses the others' results."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reference.formats import FORMATS
from reference.golden import OUTPUTS, GoldenCase, load_suite

from . import verdicts
from .expectations import Expectation, match

FRAMEWORKS = ("torch", "tensorflow", "jax")
REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 180.0
NO_API = "(no API)"


class WorkerGone(Exception):
    pass


class Worker:
    """A framework's worker process with a line-reading thread, so replies can time out."""

    def __init__(self, framework: str, log_path: Path):
        self.framework, self.log_path = framework, log_path
        self.proc: subprocess.Popen | None = None
        self.hello: dict | None = None
        self.message = ""

    def start(self) -> bool:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
                   PYTHONUNBUFFERED="1")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "conformance.worker", self.framework],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        log.close()
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self.replies), daemon=True).start()
        try:
            first = self.receive(STARTUP_TIMEOUT)
        except WorkerGone as e:
            self.hello, self.message = None, f"worker did not start: {e}"
            return False
        self.hello, self.message = first.get("hello"), first.get("message", "")
        return self.hello is not None

    @staticmethod
    def _read(proc, replies):
        for line in proc.stdout:
            replies.put(json.loads(line))
        replies.put(None)

    def receive(self, timeout: float) -> dict:
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise WorkerGone(f"no answer in {timeout:g} s (hung); worker killed") from None
        if reply is None:
            code = self.proc.wait()
            raise WorkerGone(f"worker exited with code {code} (see {self.log_path.name})")
        return reply

    def request(self, message: dict, timeout: float) -> dict:
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the reader reports the exit
        return self.receive(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class FrameworkRun:
    framework: str
    version: str = ""
    skipped: str = ""  # why it did not run (not installed, ...)
    rows: list[dict] = field(default_factory=list)


def describe_inputs(case: GoldenCase, arrays: dict, dtype: str) -> str:
    """The case's inputs in the dtype, short, for the report."""
    parts = [f"input{tuple(case.entry['input_shape'])}={verdicts.show(verdicts.values(arrays[f'input.{dtype}'], dtype), 12)}"]
    p = case.params
    if case.op != "log_softmax":
        if p["target_kind"] == "index":
            parts.append(f"target={np.asarray(arrays['target']).reshape(-1)[:12].tolist()}")
        else:
            parts.append(f"target={verdicts.show(verdicts.values(arrays[f'target.{dtype}'], dtype), 12)}")
        for name, present in (("weight", p["weighted"]), ("pos_weight", p.get("pos_weighted"))):
            if present:
                parts.append(f"{name}={verdicts.show(verdicts.values(arrays[f'{name}.{dtype}'], dtype))}")
        if p["target_kind"] == "index":
            parts.append(f"ignore_index={p['ignore_index']}")
        parts.append(f"label_smoothing={p['label_smoothing']} reduction={p['reduction']}")
    return " ".join(parts)


def _observed(payload: dict) -> verdicts.Observed:
    status = payload["status"]
    if status != "ok":
        return verdicts.Observed(status, message=payload.get("message", ""))
    storage = FORMATS[payload["dtype"]].storage
    bits = np.frombuffer(bytes.fromhex(payload["hex"]), dtype=storage).reshape(payload["shape"])
    return verdicts.Observed("ok", payload["dtype"], bits)


def run_framework(framework: str, suites: list[tuple[str, list[GoldenCase]]], *, out_dir: Path,
                  timeout: float, expectations: list[Expectation] = (), progress=None,
                  dtypes: set[str] | None = None) -> FrameworkRun:
    result = FrameworkRun(framework)
    worker = Worker(framework, out_dir / f"worker-{framework}.log")
    if not worker.start():
        worker.stop()
        result.skipped = worker.message
        return result
    hello = worker.hello
    result.version = hello["version"]
    devices = hello["devices"]
    apis_for = {}
    for api in hello["apis"]:
        apis_for.setdefault(api["op"], []).append(api["name"])
    # an op the framework has no API for is one `unsupported` row per dtype, on no device
    tasks = [(suite, case, dtype, api, device)
             for suite, cases in suites for case in cases
             for dtype in case.dtypes if dtypes is None or dtype in dtypes
             for api, device_list in ([(a, devices) for a in apis_for[case.op]] if case.op in apis_for
                                      else [(NO_API, [{"id": "-", "label": "-"}])])
             for device in device_list]
    if progress:
        progress(0, len(tasks))
    loaded_key, described_key = None, None
    for suite, case, dtype, api, device in tasks:
        if loaded_key != (suite, case.id):  # tasks come case by case: load each file once
            loaded_key, arrays = (suite, case.id), case.arrays()
        if described_key != (suite, case.id, dtype):
            described_key, inputs = (suite, case.id, dtype), describe_inputs(case, arrays, dtype)
        if api == NO_API:
            message = f"{framework} has no API for {case.op}"
            reply = {"outputs": {o: {"status": "unsupported", "message": message} for o in OUTPUTS}}
        elif worker.proc.poll() is not None and not worker.start():
            reply = {"outputs": {o: {"status": "crashed", "message": worker.message} for o in OUTPUTS}}
        else:
            try:
                reply = worker.request({"suite": suite, "case": case.id, "dtype": dtype, "api": api,
                                        "device": device["id"]}, timeout)
            except WorkerGone as e:
                reply = {"outputs": {o: {"status": "crashed", "message": str(e)} for o in OUTPUTS}}
        expected = None if case.expect_error else case.expected(arrays, dtype)
        for output in OUTPUTS:
            per_sem = None if expected is None else {name: e[output] for name, e in expected.items()}
            v = verdicts.classify(per_sem, case.expect_error, _observed(reply["outputs"][output]), dtype)
            row = {
                "suite": Path(suite).name, "case_id": case.id, "op": case.op,
                "features": ",".join(case.entry["features"]), "tags": ",".join(case.entry["tags"]),
                "framework": framework, "framework_version": hello["version"], "api": api,
                "device": device["label"], "dtype": dtype, "output": output,
                "verdict": v.verdict, "detail": v.detail,
                "expected_kind": v.expected_kind, "observed_kind": v.observed_kind,
                "max_ulp": v.max_ulp, "max_abs_err": v.max_abs_err, "max_tol_ratio": v.max_tol_ratio,
                "median_ulp": v.median_ulp,
                "expected_values": v.expected_values, "observed_values": v.observed_values,
                "inputs": inputs,
            }
            known = match(expectations, row)
            row.update(known=known.id if known else "", known_reason=known.reason if known else "",
                       evidence=known.evidence if known else "")
            result.rows.append(row)
        if progress:
            progress(1, 0)
    worker.stop()
    return result


def run(suite_dirs: list[Path], frameworks: list[str], *, out_dir: Path, timeout: float = 120.0,
        expectations: list[Expectation] = (), progress=None, dtypes: set[str] | None = None) -> list[FrameworkRun]:
    """Every framework side by side, each in its own thread driving its own worker."""
    suites = [(str(Path(d).resolve()), load_suite(d)) for d in suite_dirs]
    results: dict[str, FrameworkRun] = {}
    lock = threading.Lock()

    def locked_progress(done, more):
        if progress:
            with lock:
                progress(done, more)

    def one(fw):
        results[fw] = run_framework(fw, suites, out_dir=out_dir, timeout=timeout, expectations=expectations,
                                    progress=locked_progress, dtypes=dtypes)

    threads = [threading.Thread(target=one, args=(fw,)) for fw in frameworks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [results[fw] for fw in frameworks]
