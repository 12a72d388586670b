"""Fatal errors (a CUDA device-side assert poisons its process): the task is `crashed`, the
worker is replaced by a started spare forked from the fork server, and the run goes on. On a
CPU the worker's test switch XENT_TEST_FATAL_CASES makes chosen cases' tasks fatal."""
import os
import time

import pytest

from conformance import runner
from conformance.adapters import missing_module
from conformance.expectations import load_expectations
from conformance.suites import SUITES

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing_module("torch") is not None, reason="needs torch")]

CASES = {"cat-ce-out-of-range-c-mean", "cat-ce-out-of-range-neg1-none", "ce-mean", "ls-ordinary"}
FATAL = "cat-ce-out-of-range-*"


def _workers_alive(mark: str) -> set[int]:
    """This test's worker processes (fork server, workers, spares): those whose environment holds
    its mark (other tests may run workers at the same time, under xdist)."""
    found = set()
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and b"conformance.worker" in open(f"/proc/{pid}/cmdline", "rb").read() \
                    and f"XENT_TEST_MARK={mark}".encode() in open(f"/proc/{pid}/environ", "rb").read():
                found.add(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("use_spares, lanes", [(True, 1), (False, 1), (True, 3)])
def test_fatal_tasks_are_crashed_and_the_run_goes_on(tmp_path, monkeypatch, use_spares, lanes):
    """With lanes side by side, a fatal error in any lane costs a started spare (the lanes
    beside the first used to start a new interpreter: seconds, and CUDA's start on a GPU)."""
    mark = str(tmp_path)
    monkeypatch.setenv("XENT_TEST_MARK", mark)
    monkeypatch.setenv("XENT_TEST_FATAL_CASES", FATAL)
    (run,) = runner.run([SUITES["default"][1]], ["torch"], out_dir=tmp_path, expectations=load_expectations(),
                        case_ids=CASES, use_spares=use_spares, lanes=lanes)
    assert not run.error and not run.skipped
    fatal = [r for r in run.rows if r.case_id.startswith("cat-ce-out-of-range-")]
    others = [r for r in run.rows if not r.case_id.startswith("cat-ce-out-of-range-")]
    assert fatal and all(r.verdict == "crashed" and "fatal, worker restarted" in r.detail for r in fatal)
    assert others and all(r.verdict in ("conforms", "variant") for r in others)
    tasks = len(fatal) // 2  # loss and grad
    # a worker is replaced when tasks remain: every fatal task but those that end a lane
    assert run.done == run.planned and tasks - lanes <= run.restarts <= tasks
    assert run.spares_used == (run.restarts if use_spares else 0)
    deadline = time.monotonic() + 10  # nothing left behind: workers, spares, the fork server
    while _workers_alive(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _workers_alive(mark)


def test_a_forked_worker_answers_as_a_new_interpreter_does(tmp_path, monkeypatch):
    """The same rows, bit for bit, from workers forked from the fork server and from a worker
    that is a new interpreter (the registry's `forks` turned off)."""
    cases = {"ce-mean", "ls-ordinary", "cat-bce-zero"}
    (forked,) = runner.run([SUITES["default"][1]], ["torch"], out_dir=tmp_path / "f", case_ids=cases)
    monkeypatch.setattr(runner, "_forks", lambda framework: False)
    (plain,) = runner.run([SUITES["default"][1]], ["torch"], out_dir=tmp_path / "p", case_ids=cases)
    key = lambda r: (r.case_id, r.api, r.dtype, r.output)  # noqa: E731
    assert sorted((key(r), r.observed_bits, r.verdict) for r in forked.rows) == \
        sorted((key(r), r.observed_bits, r.verdict) for r in plain.rows)
    assert (tmp_path / "f" / "worker-torch.log").exists()


def _kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split("-")[0].split(".")
    return (int(release[0]), int(release[1])) >= (major, minor)


def _anonymous_kb(pid: int, names: tuple[str, ...] = ("", "[heap]")) -> tuple[int, int]:
    """kB of a process's anonymous memory (Python's arenas, torch's allocations, the heap), and
    of it on transparent huge pages."""
    anonymous = huge = 0
    name = None
    for line in open(f"/proc/{pid}/smaps"):
        fields = line.split()
        if "-" in fields[0] and ":" not in fields[0]:  # a mapping's first line: address range, ..., [name]
            name = fields[5] if len(fields) > 5 else ""
        elif name in names and fields[0] == "Anonymous:":
            anonymous += int(fields[1])
        elif name in names and fields[0] == "AnonHugePages:":
            huge += int(fields[1])
    return anonymous, huge


@pytest.mark.skipif(not os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled")
                    or "[never]" in open("/sys/kernel/mm/transparent_hugepage/enabled").read()
                    or not _kernel_at_least(6, 1), reason="no transparent huge pages, or no MADV_COLLAPSE (Linux 6.1)")
def test_the_fork_servers_own_memory_is_on_huge_pages(tmp_path):
    """Python's arenas and torch's allocations (anonymous mappings besides the heap, which glibc's
    tunable puts on huge pages) are moved onto 2 MB pages: a fork copies, and a child's exit
    frees, a page-table entry per 2 MB there (worker._on_huge_pages). Loading a suite for the
    children (frees and allocations) broke 25-30 MB of them back into 4 kB pages: they are
    collapsed again after it."""
    worker = runner.Worker("torch", tmp_path / "worker.log")
    try:
        assert worker.start(), worker.message
        _, huge = _anonymous_kb(worker.server.proc.pid, names=("",))
        assert huge > 8 * 1024, f"{huge} kB of the fork server's anonymous mappings on huge pages"
        anonymous, huge = _anonymous_kb(worker.server.proc.pid)
        small_before = anonymous - huge
        worker.server.suites = [str(SUITES["default"][1])]
        child = worker.server.fork()  # the server loads the suite first
        child.kill()
        child.wait()
        anonymous, huge = _anonymous_kb(worker.server.proc.pid)
        assert anonymous - huge < small_before + 12 * 1024, \
            f"{small_before} kB of anonymous memory on 4 kB pages before a suite was loaded, {anonymous - huge} kB after"
    finally:
        worker.close()


def _pipes(pid: int) -> set[str]:
    """The pipes a process holds an end of ("pipe:[inode]"; both ends of a pipe read the same)."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if link.startswith("pipe:"):
            found.add(link)
    return found


def test_a_forked_workers_pipes_are_its_own_so_its_death_is_seen_at_once(tmp_path):
    """The runner makes each worker's two pipes and passes the child's ends to the fork server,
    which closes its copies once it has forked: neither the server nor a worker forked later
    holds an end of an earlier worker's pipes, so a worker's death ends its replies at once (a
    leaked end would keep them open: a fatal error would look like a hang, found only by the
    task's timeout)."""
    first = runner.Worker("torch", tmp_path / "worker.log")
    try:
        assert first.start(), first.message
        later = [runner.Worker("torch", tmp_path / "worker.log", forks=False) for _ in range(2)]
        for worker in later:
            worker.adopt(first.server.fork(spare=True))
            assert worker.ready(), worker.message
        own = _pipes(first.proc.pid)
        assert len(own) == 2  # its requests and its replies
        for pid in (first.server.proc.pid, *(w.proc.pid for w in later)):
            assert not own & _pipes(pid), f"process {pid} holds an end of the first worker's pipes"
        first.proc.kill()
        start = time.monotonic()
        with pytest.raises(runner.WorkerGone):
            first.receive(30)
        assert time.monotonic() - start < 5
        for worker in later:
            worker.stop()
    finally:
        first.close()


def test_a_forked_worker_let_go_is_gone_for_the_runner_even_as_a_zombie():
    """A forked worker whose replies ended may still be a process (exiting, or a zombie nobody
    reaps once its fork server died, which a signal 0 cannot tell from a live one): after
    `wait` (the runner letting it go, its pipe closed) `poll` must say it is gone, or the next
    task goes to the closed pipe (the run stopped with "write to closed file")."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        time.sleep(0.2)  # a zombie now: this test's child, not reaped yet
        read_end, write_end = os.pipe()
        proc = runner.ForkedProcess(pid, os.fdopen(write_end, "wb"), os.fdopen(read_end, "rb"))
        assert proc.poll() is None  # what poll alone sees of a zombie
        proc.wait()
        assert proc.poll() is not None and proc.stdin.closed
        proc.stdout.close()
    finally:
        os.waitpid(pid, 0)
