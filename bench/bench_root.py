"""A root of millions of tasks, created lazily, against `metaprod up`.

    python bench/bench_root.py [--tasks 10000000] [--max-seconds 1800] [--b-tasks 200]
                               [--db sqlite|mysql://root@127.0.0.1:3306] [--runs N]

Starts `metaprod up` as a subprocess (services, agents, local backend) on a fresh database,
then, in each run:

1. Baseline: production B (`--b-tasks` trivial tasks, command `true`) on the idle `up`: time
   from `production start` to Completed.
2. Production A, a root of `tasks: N` (command `true`), is started. The tasks agent creates at
   most `db.tasks.ROOT_TASKS_PER_CYCLE` of them per cycle and keeps at most
   `db.tasks.ROOT_BACKLOG` of them Created (waiting to be submitted): creation runs ahead of
   execution by that much and no further (the local backend runs A's tasks meanwhile, on the
   same cores, which is what a real deployment does). Measured until all N exist or
   `--max-seconds` have passed (whichever comes first; the count reached is printed, and the
   time all N would take extrapolated at the rate measured), with the largest backlog sampled.
3. While A is being created (once `--b-after` of its tasks exist), production B again: its
   time to Completed with A running, against the baseline (target: B served meanwhile, not
   queued behind A's millions of Created tasks).

Sampled every `--sample` seconds meanwhile: the RSS of the `up` process (its services and
agents are threads of that one process; the jobs are its children and are not counted), the
tasks created (max(task_index) + 1, read from the database through the unique index), and
every agent's last cycle time from its heartbeat. Printed: creation rate (tasks/s), tasks
created, RSS at start / after 1M tasks / at the end and at every tenth of the tasks (target:
flat, within some tens of MB; on SQLite each pooled connection's page cache, up to 256 MiB,
fills as the database grows, so there the RSS rises to a plateau), the tasks agent's cycles
(mean, and the largest sampled) and every agent's largest sampled cycle (target < 1 s; the
heartbeat keeps one cycle a second, so a sample, not every cycle), B's completion time
with A running vs alone, `production progress` and `production list` through the client
with A at its size (p50 / max of 10 calls; target < 200 ms), and `production stop --kill` of A
at the end (it marks the tasks that exist Killed: a bounded number, whatever N is).
With --runs N each run uses a new `up` on a new database; figures are min / median / max.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench_pipeline import database_url, metaprod_up, wait_status
from metaprod.clients.client import Client
from metaprod.db import tasks as dbtasks
from metaprod.db.models import AgentHeartbeat, Production, StatusCounter, Task, Transformation
from metaprod.db.session import Database
from runs import Runs
from sqlalchemy import func, select


def rss_mb(pid: int) -> float:
    """Resident memory of one process (all its threads), MB; its children are not counted."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Sample:
    at: float  # seconds after A's start
    created: int
    waiting: int  # A's tasks Created, not yet submitted (its status counter)
    rss: float
    cycles: dict[str, float]  # each agent's last cycle (s), from its heartbeat


@dataclass
class Sampler:
    """A thread that samples `up` while A is being created."""

    db_url: str
    pid: int
    production: str
    period: float
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.db = Database(self.db_url)
        self.start_time = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def created(self) -> tuple[int, int, dict[str, float]]:
        """A's tasks created so far, those of them waiting (Created), and each agent's last
        cycle (s)."""
        of_a = (
            select(Transformation.id)
            .join(Production, Production.id == Transformation.production_id)
            .where(Production.name == self.production)
            .scalar_subquery()
        )
        with self.db.session_scope(readonly=True) as session:
            n = session.scalar(
                select(func.coalesce(func.max(Task.task_index) + 1, 0)).where(Task.transformation_id == of_a)
            )
            waiting = session.scalar(
                select(func.coalesce(func.sum(StatusCounter.n), 0)).where(
                    StatusCounter.transformation_id == of_a,
                    StatusCounter.what == "task",
                    StatusCounter.status == "Created",
                )
            )
            cycles = {
                name: float(seconds or 0.0)
                for name, seconds in session.execute(select(AgentHeartbeat.name, AgentHeartbeat.last_cycle_seconds))
            }
        return int(n or 0), int(waiting or 0), cycles

    def sample(self) -> Sample:
        created, waiting, cycle = self.created()
        s = Sample(time.monotonic() - self.start_time, created, waiting, rss_mb(self.pid), cycle)
        self.samples.append(s)
        return s

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def start(self) -> None:
        self.start_time = time.monotonic()
        self.sample()
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()
        self.sample()
        self.db.dispose()

    def tasks_agent_cycles(self) -> tuple[int, float]:
        with self.db.session_scope(readonly=True) as session:
            row = session.execute(
                select(AgentHeartbeat.cycles, AgentHeartbeat.cycle_seconds_total).where(AgentHeartbeat.name == "tasks")
            ).first()
        return (int(row[0]), float(row[1])) if row else (0, 0.0)


def run_b(client: Client, name: str, n: int, timeout: float) -> float | None:
    """Production B: `n` trivial tasks; seconds from start to Completed, None if not within `timeout`."""
    client.productions.create({"production": name, "transformations": [{"name": "b", "tasks": n, "command": "true"}]})
    start = time.monotonic()
    client.productions.start(name)
    try:
        return wait_status(client, name, "Completed", timeout) - start
    except TimeoutError:
        return None


def timed_calls(call: Callable[[], object], times: int = 10) -> tuple[float, float]:
    """p50 and max of `times` calls, ms."""
    took = []
    for _ in range(times):
        start = time.perf_counter()
        call()
        took.append(1000 * (time.perf_counter() - start))
    return statistics.median(took), max(took)


def one_run(args: argparse.Namespace, url: str, client: Client, pid: int, runs: Runs, run: int) -> None:
    alone = run_b(client, f"b-alone-{run}", args.b_tasks, args.b_timeout)
    print(f"B alone ({args.b_tasks} trivial tasks, idle `up`): " + (f"{alone:.2f} s" if alone else "not Completed"))
    a = f"root-{run}"
    client.productions.create(
        {"production": a, "transformations": [{"name": "gen", "tasks": args.tasks, "command": "true"}]}
    )
    sampler = Sampler(url, pid, a, args.sample)
    cycles_before = sampler.tasks_agent_cycles()
    client.productions.start(a)
    sampler.start()
    start = time.monotonic()
    b_with: float | None = None
    b_done = False
    b_thread: threading.Thread | None = None

    def b_run() -> None:
        nonlocal b_with, b_done
        b_with = run_b(client, f"b-with-a-{run}", args.b_tasks, args.b_timeout)
        b_done = True

    b_started_at = 0
    while True:
        created = sampler.samples[-1].created if sampler.samples else 0
        elapsed = time.monotonic() - start
        if b_thread is None and created >= min(args.b_after, args.tasks):
            b_started_at = created
            b_thread = threading.Thread(target=b_run, daemon=True)
            b_thread.start()
        if created >= args.tasks or elapsed >= args.max_seconds:
            break
        time.sleep(args.sample)
    sampler.stop()
    end = sampler.samples[-1]
    # A's size as created: the summaries are timed before anything is stopped.
    progress_p50, progress_max = timed_calls(lambda: client.productions.progress(a))
    list_p50, list_max = timed_calls(lambda: client.productions.list())
    if b_thread is not None:
        b_thread.join()
    cycles_after = sampler.tasks_agent_cycles()
    rate = end.created / end.at
    reached = "all" if end.created >= args.tasks else f"stopped after {args.max_seconds:.0f} s:"
    rss = [s.rss for s in sampler.samples]
    at_million = next((s for s in sampler.samples if s.created >= 1_000_000), None)
    cycles = cycles_after[0] - cycles_before[0]
    cycle_mean = (cycles_after[1] - cycles_before[1]) / cycles if cycles else 0.0
    print(f"A: root of {args.tasks:,} tasks; {reached} {end.created:,} created in {end.at:.1f} s: {rate:,.0f} tasks/s")
    if end.created < args.tasks:
        print(f"    all {args.tasks:,} at this rate: {args.tasks / rate / 60:.0f} min (extrapolated, not measured)")
    quarter = [s for s in sampler.samples if s.created >= end.created * 3 / 4]
    if len(quarter) > 1 and quarter[-1].at > quarter[0].at:
        late = (quarter[-1].created - quarter[0].created) / (quarter[-1].at - quarter[0].at)
        print(f"    rate over the last quarter of the tasks created: {late:,.0f} tasks/s")
    million = f"{at_million.rss:.0f} MB (at {at_million.created:,})" if at_million else "(1M not reached)"
    print(
        f"    `up` RSS: start {rss[0]:.0f} MB, after 1M tasks {million}, end {rss[-1]:.0f} MB, "
        f"max {max(rss):.0f} MB (target: flat, within some tens of MB)"
    )
    step = max(1, args.tasks // 10)
    marks = [next((s for s in sampler.samples if s.created >= m), None) for m in range(step, args.tasks + 1, step)]
    print(
        "    `up` RSS by tasks created: "
        + ", ".join(f"{s.created / 1e6:.1f}M {s.rss:.0f} MB" for s in marks if s is not None)
    )
    print(
        f"    largest backlog sampled (Created, not yet submitted): {max(s.waiting for s in sampler.samples):,} "
        f"(bound: ROOT_BACKLOG {dbtasks.ROOT_BACKLOG:,} + a cycle's {dbtasks.ROOT_TASKS_PER_CYCLE:,})"
    )
    print(
        f"    tasks agent: {cycles} cycles, mean {1000 * cycle_mean:.0f} ms, "
        f"largest sampled {1000 * max(s.cycles.get('tasks', 0.0) for s in sampler.samples):.0f} ms (target < 1 s)"
    )
    largest: dict[str, float] = {}
    for s in sampler.samples:
        for name, seconds in s.cycles.items():
            largest[name] = max(largest.get(name, 0.0), seconds)
    print(
        "    largest cycle sampled, every agent: "
        + ", ".join(f"{name} {1000 * seconds:.0f} ms" for name, seconds in sorted(largest.items()))
    )
    b_text = f"{b_with:.2f} s" if b_with is not None else f"not Completed within {args.b_timeout:.0f} s (starved)"
    print(f"B with A running (started when {b_started_at:,} of A's tasks existed): {b_text}; alone: {alone:.2f} s")
    print(f"production progress (A, {end.created:,} tasks): p50 {progress_p50:.0f} ms, max {progress_max:.0f} ms")
    print(f"production list: p50 {list_p50:.0f} ms, max {list_max:.0f} ms (target < 200 ms)")
    # What stopping A (killing its tasks) costs at this size: bounded by the backlog, not N.
    stop_start = time.monotonic()
    killed_in = float("inf")
    try:
        client.productions.stop(a, kill=True)
        killed_in = time.monotonic() - stop_start
        print(f"production stop --kill (A): {killed_in:.2f} s")
    except Exception as exc:  # its RPC deadline: said, and `up` is torn down anyway
        print(f"production stop --kill (A): no answer after {time.monotonic() - stop_start:.1f} s ({exc})")
    runs.add("A tasks created", end.created)
    runs.add("A creation tasks/s", rate)
    runs.add("up RSS start MB", rss[0])
    runs.add("up RSS end MB", rss[-1])
    runs.add("up RSS max MB", max(rss))
    runs.add("tasks cycle mean ms", 1000 * cycle_mean)
    runs.add("B alone s", alone or float("inf"), "{:.2f}")
    runs.add("B with A s", b_with if b_with is not None else float("inf"), "{:.2f}")
    runs.add("progress p50 ms", progress_p50)
    runs.add("list p50 ms", list_p50)
    runs.add("largest backlog", max(s.waiting for s in sampler.samples))
    runs.add("stop --kill s", killed_in, "{:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000_000)
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="stop measuring creation after this")
    parser.add_argument("--b-tasks", type=int, default=200)
    parser.add_argument("--b-after", type=int, default=100_000, help="start B once this many of A's tasks exist")
    parser.add_argument("--b-timeout", type=float, default=300.0)
    parser.add_argument("--sample", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    runs = Runs()
    workdir = Path(tempfile.mkdtemp(prefix="metaprod-root-bench-"))
    print(f"database: {args.db}; cpus: {os.cpu_count()}; python {sys.version.split()[0]}; load {os.getloadavg()}")
    try:
        for run in range(args.runs):
            data_dir = workdir / f"data-{run}"
            data_dir.mkdir()
            with database_url(args.db, workdir) as url, metaprod_up(data_dir, url) as (client, pid):
                one_run(args, url, client, pid, runs, run)
            print(f"load average after run {run}: {os.getloadavg()}")
        print(f"summary over {args.runs} run(s) ({args.db}):")
        print(runs.summary())
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
