"""The cost of fatal errors: torch's default suite through the runner, plain and with 100 of its
tasks dying as a CUDA device-side assert does (XENT_TEST_FATAL_CASES: every task of the chosen
cases is fatal, so they come in runs, as an out-of-range case's tasks do on CUDA), side by side:
`--rounds` pairs (9), each pair back to back, so every ratio compares two runs under the same load,
every other pair fatal first.
A worker killed by a fatal error is replaced by a started spare forked from the fork server
(conformance.runner.Spares); `--without-spares` adds, once, the run where each fatal error
costs a new worker from the fork server with no spare waiting, and `--before` the run where it
costs a new interpreter, as before the fork server (slow: seconds a fatal error); `--cycles N`
first makes N spares one after another, each answering one fatal task, and says where one
spare's CPU goes (the machine's, less idle and steal; the fork server's; the runner's; the
child's before its exit, and its page faults: the pages it copies from the fork server). Each
run says the machine's CPU it used and the CPU stolen meanwhile (a neighbour's noise on a shared
virtual machine: a pair in which either run lost more than 1% of the machine's cores to steal
compares nothing, and is left out of the median). The last line is the median
`fatal-error overhead: R.RRx`."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FATAL_TASKS = 100
STEAL = 0.01  # of the machine's cores, stolen during a run: above it, its pair is left out of the median


@dataclass
class Timed:
    wall: float
    cpu: float  # the machine's, all cores
    stolen: float  # CPU the hypervisor gave to other machines meanwhile: a neighbour's noise, not ours

    def __str__(self) -> str:
        return f"{self.wall:.2f} s (machine CPU {self.cpu:.2f} s, stolen {self.stolen:.2f} s)"

    def disturbed(self) -> bool:
        """Whether neighbours took more than STEAL of the machine's cores meanwhile: such a run
        says how busy the host was, not what fatal errors cost."""
        return self.stolen > STEAL * self.wall * (os.cpu_count() or 1)


def timed_run(fatal_cases: list[str], use_spares: bool = True, forks: bool = True):
    from conformance import runner
    from conformance.suites import SUITES
    os.environ["XENT_TEST_FATAL_CASES"] = ",".join(fatal_cases)
    forking = runner._forks
    if not forks:  # every worker a new interpreter, as before the fork server
        runner._forks = lambda framework: False
    try:
        with tempfile.TemporaryDirectory() as out:
            start, (cpu, stolen) = time.perf_counter(), machine_times()
            (run,) = runner.run([SUITES["default"][1]], ["torch"], out_dir=Path(out), use_spares=use_spares)
            wall, (cpu_after, stolen_after) = time.perf_counter() - start, machine_times()
            return Timed(wall, cpu_after - cpu, stolen_after - stolen), run
    finally:
        del os.environ["XENT_TEST_FATAL_CASES"]
        runner._forks = forking


def machine_times() -> tuple[float, float]:
    """From one reading of /proc/stat's all-cores line (user, nice, system, idle, iowait, irq,
    softirq, steal, ...): the CPU seconds the machine has spent, all cores, less idle, iowait
    and steal; and the CPU seconds the hypervisor gave its vCPUs to others (stolen)."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - fields[3] - fields[4] - fields[7]) / tick, fields[7] / tick


def _process_stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command's name: state, ppid, ..., minflt (7), utime (11), stime (12)."""
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()


def process_cpu(pid: int) -> float:
    fields = _process_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spare_cycles(n: int, case_id: str) -> None:
    """n spares, one after another: forked, started, one fatal task each (as in a run's burst)."""
    from conformance import runner
    from conformance.protocol import Request, TaskRequest
    from conformance.suites import SUITES
    suite = str(SUITES["default"][1])
    os.environ["XENT_TEST_FATAL_CASES"] = case_id
    try:
        with tempfile.TemporaryDirectory() as out:
            first = runner.Worker("torch", Path(out) / "worker.log")
            if not first.start() or first.server is None:
                raise SystemExit(f"no fork server for torch here: {first.message}")
            api = next(a.name for a in first.hello.apis if a.op == "cross_entropy")
            first.server.suites = [suite]
            server = first.server.proc.pid
            wall, machine, served, own = time.perf_counter(), machine_times()[0], process_cpu(server), time.process_time()
            child, faults, spares = [], [], runner.Spares(first, runner.Control())
            for _ in range(n):
                spare = spares._spare()  # as the runner makes one: forked, started
                spare.send(Request(suite, case_id, [TaskRequest("float32", api, "cpu", "eager")]))
                assert spare.receive(30).fatal
                try:  # its time on a CPU so far (ns): set-up, hello, the task; not its exit
                    child.append(int(open(f"/proc/{spare.proc.pid}/schedstat").read().split()[0]) / 1e9)
                    faults.append(int(_process_stat(spare.proc.pid)[7]))
                except OSError:
                    pass
                spare.stop()
            wall, machine = time.perf_counter() - wall, machine_times()[0] - machine
            served, own = process_cpu(server) - served, time.process_time() - own
            first.close()
    finally:
        del os.environ["XENT_TEST_FATAL_CASES"]
    ms = lambda seconds: f"{seconds / n * 1e3:.1f} ms"  # noqa: E731
    print(f"spare cycle ({n} one after another): {ms(wall)} wall, {ms(machine)} of the machine's CPU: fork server "
          f"{ms(served)}, runner {ms(own)}, child before its exit {statistics.median(child) * 1e3:.1f} ms and "
          f"{statistics.median(faults):.0f} page faults (median)",
          flush=True)


def choose(run, wanted: int) -> list[str]:
    """Cases whose torch tasks add up to exactly `wanted`: the ones that are fatal on CUDA (class
    indices out of range: a device-side assert), then others, in suite order."""
    tasks: dict[str, int] = {}
    for row in sorted(run.rows, key=lambda r: "domain_error" not in r.features.split(",")):
        if row.output == "loss" and row.verdict != "unsupported":
            tasks[row.case_id] = tasks.get(row.case_id, 0) + 1
    chosen, total = [], 0
    for case_id, n in tasks.items():
        if total + n <= wanted:
            chosen.append(case_id)
            total += n
        if total == wanted:
            return chosen
    raise SystemExit(f"cannot pick cases with exactly {wanted} tasks (got {total})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9, help="pairs of runs (0: only --cycles)")
    parser.add_argument("--without-spares", action="store_true", help="also run once without spares")
    parser.add_argument("--before", action="store_true", help="also run once with a new interpreter per fatal error")
    parser.add_argument("--cycles", type=int, default=0, metavar="N", help="first, N spares one after another")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    load_before = os.getloadavg()[0]
    _, first = timed_run([])  # warms the disk cache, and says which tasks there are
    fatal_cases = choose(first, FATAL_TASKS)
    if args.cycles:
        spare_cycles(args.cycles, fatal_cases[0])
    if not args.rounds:
        return
    ratios = []
    for i in range(args.rounds):
        if i % 2:  # every other pair the other way round: a load that rises or falls within a pair
            fatal, hit = timed_run(fatal_cases)  # favours neither side over the rounds
            plain, run = timed_run([])
        else:
            plain, run = timed_run([])
            fatal, hit = timed_run(fatal_cases)
        crashed = sum(1 for r in hit.rows if r.output == "loss" and r.verdict == "crashed")
        assert crashed == FATAL_TASKS and len(hit.rows) == len(run.rows), (crashed, len(hit.rows), len(run.rows))
        ratio = fatal.wall / plain.wall
        compared = not (plain.disturbed() or fatal.disturbed())
        ratios.append((ratio, compared))
        print(f"round {i + 1}: {run.done} torch tasks: plain {plain}, with {crashed} fatal errors {fatal}: "
              f"{hit.restarts} workers replaced, {hit.spares_used} by a started spare: {ratio:.2f}x"
              f"{'' if compared else ' (left out: CPU stolen)'}", flush=True)
    if args.without_spares:
        bare, hit = timed_run(fatal_cases, use_spares=False)
        print(f"without spares: {bare} ({hit.restarts} workers forked from the fork server when needed)")
    if args.before:
        old, hit = timed_run(fatal_cases, use_spares=False, forks=False)
        print(f"a new interpreter per fatal error: {old} ({hit.restarts} workers started)")
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs; "
          f"fatal cases: {', '.join(fatal_cases)}")
    kept = [r for r, compared in ratios if compared]
    if len(kept) < len(ratios):
        print(f"{len(ratios) - len(kept)} of {len(ratios)} pairs left out (a run lost more than {STEAL:.0%} of the "
              f"machine's CPU to its neighbours)" + ("" if kept else ": every pair was, the median is of them all"))
    print(f"fatal-error overhead: {statistics.median(kept or [r for r, _ in ratios]):.2f}x")


if __name__ == "__main__":
    main()
