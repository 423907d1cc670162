"""End-to-end pipeline benchmark on the local backend.

    python bench/bench_pipeline.py [--tasks 5000] [--latency-files 50] [--group-files 1000000]
                                   [--db sqlite|mysql://root@127.0.0.1:3306] [--runs N]

(a) Throughput. Starts `metaprod up` as a subprocess (services, agents, local backend: the real
    deployment) on a fresh database, creates a production whose root transformation runs
    `tasks: N` trivial tasks (command `true`, no outputs) and times `production start` to the
    production's Completed status (polled through the Python client every 0.1 s). Against it,
    in the same run and on the same machine, N `/bin/true` processes spawned with
    `subprocess.run` at the same concurrency (os.cpu_count() threads). Prints both rates and
    their ratio (target >= 0.3), the CPU a task costs in `up` and in the jobs, and when (after
    `production start`) the first attempt was claimed and the last report came in. The jobs
    run in their sandbox (`--sandbox auto`: bwrap where it works); then, in the same run,
    (a) is repeated against a second `up` with `--sandbox none`, and the sandbox's cost per
    task is printed (wall time per task per worker, and CPU in the jobs, on minus off).
(b) Latency. Against the same `metaprod up`, an Active transformation with input query
    `{bench: lat}` and group_size 1 whose command appends `date +%s.%N` to a file outside the
    data directory, shown to the sandboxes by the `sandbox_writable` setting (its parent,
    a `sleep 600` task, keeps it Active and holds one of the workers): K files are
    registered one at a time through the client (0.3 s apart); latency = command start -
    time just before the RegisterFiles call. Prints p50/p95/max (target p50 < 1 s) and how
    many jobs had not started after 60 s (counted as infinite latencies, never dropped).
(c) Grouping. In this process, on another fresh database: M files and their Unused
    TransformationFile rows inserted with DB-API executemany (setup, untimed), then
    `db.tasks.create_tasks` cycles (group_size 10) are timed until no file is Unused.
    Prints files/s (target >= 100,000/s), and two raw baselines on the same files
    (grouping_raw): the least SQL today's schema needs (a row per file), with metaprod's ratio
    to it, and the floor of a schema that would write one row per task only.
With --runs N, (a) and (b) are repeated N times against the same `up` and (c) N times on
fresh databases; every figure is printed as min / median / max.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Any

import grouping_raw
from metaprod.clients import connect
from metaprod.clients.client import Client
from metaprod.core.auth import Principal, Role
from metaprod.core.statuses import FileStatus, TransformationStatus
from metaprod.db import tasks as dbtasks
from metaprod.db.migrate import upgrade
from metaprod.db.models import JobAttempt, Production, ProductionEvent, Task, Transformation, TransformationFile
from metaprod.db.productions import create_production
from metaprod.db.session import Database
from rawrows import raw_cursor
from runs import Runs
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.engine import make_url

AGENTS: dict[str, Any] = {
    "poll_seconds": 1.0,
    "heartbeat_interval": 5.0,
    "heartbeat_timeout": 120.0,
    "report_grace_seconds": 30.0,
}
if os.environ.get("BENCH_AGENTS"):
    AGENTS.update(json.loads(os.environ["BENCH_AGENTS"]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def database_url(kind: str, workdir: Path) -> Iterator[str]:
    """A new empty database: a SQLite file in `workdir`, or a new MariaDB database."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        return
    server = make_url(kind)
    name = f"mp_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.set(database=""))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@contextmanager
def metaprod_up(data_dir: Path, db_url: str, sandbox: str = "auto") -> Iterator[tuple[Client, int]]:
    """`metaprod up` in a subprocess; yields an admin client and the process id."""
    port = free_port()
    env = dict(os.environ, METAPROD_LOG_LEVEL="WARNING", METAPROD_SANDBOX=sandbox)
    log = open(data_dir / "up.log", "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "metaprod.clients.cli", "up", "--data-dir", str(data_dir), "--port", str(port)),
            *("--db", db_url, "--agent-config", json.dumps(AGENTS)),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    client = None
    try:
        deadline = time.monotonic() + 60
        token_file = data_dir / "admin.token"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"metaprod up exited: {(data_dir / 'up.log').read_text()[-3000:]}")
            if token_file.exists() and token_file.read_text().strip():
                try:
                    client = connect(f"127.0.0.1:{port}", token_file.read_text().strip(), timeout=60)
                    client.health()
                    break
                except Exception:
                    if client is not None:
                        client.close()
                        client = None
            if time.monotonic() > deadline:
                raise TimeoutError("metaprod up did not answer")
            time.sleep(0.2)
        yield client, proc.pid
    finally:
        if client is not None:
            client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_status(client: Client, production: str, status: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        if client.productions.get(production).status == status:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{production} not {status}: {client.productions.progress(production)}")
        time.sleep(0.1)


def true_rate(n: int, workers: int, argv: tuple[str, ...] = ("/bin/true",)) -> float:
    """/bin/true (or `argv`) processes per second, `workers` at a time."""
    remaining = iter(range(n))
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                if next(remaining, None) is None:
                    return
            subprocess.run(argv, check=True)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return n / (time.monotonic() - start)


def tree_cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time of a process itself, and of its descendants (live ones, and the reaped ones
    they waited for), from /proc."""
    own = descendants = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            if p == pid:
                own = sum(int(v) for v in fields[11:13]) / ticks  # utime stime
                descendants += sum(int(v) for v in fields[13:15]) / ticks  # cutime cstime
            else:
                descendants += sum(int(v) for v in fields[11:15]) / ticks
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue  # it ended meanwhile
    return own, descendants


def timeline(db_url: str, start: float, production: str) -> str:
    """When, after `production start`, the production's first attempt was claimed and its last
    report came in (from the database): the rest of the run is start-up and wind-down."""
    db = Database(db_url)
    try:
        with db.session_scope(readonly=True) as session:
            first, last = session.execute(
                select(func.min(JobAttempt.submitted_at), func.max(JobAttempt.finished_at))
                .join(Task, Task.id == JobAttempt.task_id)
                .join(Transformation, Transformation.id == Task.transformation_id)
                .join(Production, Production.id == Transformation.production_id)
                .where(Production.name == production)
            ).one()
    finally:
        db.dispose()
    if first is None or last is None:
        return "no attempts"
    return f"first claim at {first.timestamp() - start:.2f} s, last report at {last.timestamp() - start:.2f} s"


def completed_at(db_url: str, production: str) -> float | None:
    """When (epoch seconds) the production's last transformation was recorded Completed."""
    db = Database(db_url)
    try:
        with db.session_scope(readonly=True) as session:
            last = session.scalar(
                select(func.max(ProductionEvent.time))
                .join(Production, Production.id == ProductionEvent.production_id)
                .where(Production.name == production, ProductionEvent.event == "completed")
            )
    finally:
        db.dispose()
    if last is None:
        return None
    return (last if last.tzinfo else last.replace(tzinfo=UTC)).timestamp()


def bench_throughput(
    client: Client, pid: int, n: int, db_url: str, runs: Runs, run: int, label: str = ""
) -> tuple[float, float]:
    """(a); returns the tasks per second and the CPU per task in the jobs (s)."""
    workers = os.cpu_count() or 1
    name = "-".join(["throughput", *label.split(), str(run)])
    spec = {"production": name, "transformations": [{"name": "gen", "tasks": n, "command": "true"}]}
    client.productions.create(spec)
    cpu = tree_cpu_seconds(pid)
    start, wall_start = time.monotonic(), time.time()
    client.productions.start(name)
    seen = wait_status(client, name, "Completed", timeout=max(600.0, n / 5)) - start
    after = tree_cpu_seconds(pid)
    # The run ends when the system recorded the production's end (its history), not when
    # this process's poll (every 0.1 s) happened to see it.
    recorded = completed_at(db_url, name)
    end = seen if recorded is None else min(seen, recorded - wall_start)
    services, jobs = after[0] - cpu[0], after[1] - cpu[1]
    progress = client.productions.progress(name)
    done = sum(t.tasks.get("Done", 0) for t in progress.transformations)
    assert done == n, progress
    rate = n / end
    baseline = true_rate(n, workers)
    print(f"(a{label}) {n} trivial tasks end to end (local backend, max_workers={workers}): {end:.2f} s")
    # Where the time goes: the cores the run kept busy, split between `up` and the jobs.
    print(
        f"    cores busy: {(services + jobs) / end:.2f} of {workers} "
        f"({services / end:.2f} in `up`, {jobs / end:.2f} in the jobs)"
    )
    print(
        f"    metaprod: {rate:8.1f} tasks/s; CPU per task: {1000 * services / n:.2f} ms in `up` (services, "
        f"agents), {1000 * jobs / n:.2f} ms in the jobs (pool workers, wrappers, commands)"
    )
    print(f"    {timeline(db_url, wall_start, name)}, Completed recorded at {end:.2f} s, seen at {seen:.2f} s")
    print(f"    /bin/true x{n}, {workers} at a time: {baseline:8.1f} processes/s")
    print(f"    ratio: {rate / baseline:.3f} (target >= 0.3)")
    runs.add(f"(a{label}) tasks/s", rate)
    runs.add(f"(a{label}) /bin/true processes/s", baseline)
    runs.add(f"(a{label}) ratio", rate / baseline, "{:.3f}")
    return rate, jobs / n


def sandbox_cost(on: tuple[float, float], off: tuple[float, float], runs: Runs) -> None:
    """What the sandbox costs a trivial task: wall time per task on one worker, CPU in the jobs."""
    workers = os.cpu_count() or 1
    wall = workers * (1 / on[0] - 1 / off[0])
    cpu = on[1] - off[1]
    print(
        f"    sandbox cost per task: {1000 * wall:.2f} ms of a worker's time, {1000 * cpu:.2f} ms CPU in the jobs "
        f"({on[0]:.0f} tasks/s with the sandbox, {off[0]:.0f} without)"
    )
    runs.add("(a) sandbox ms/task (worker time)", 1000 * wall, "{:.2f}")
    runs.add("(a) sandbox ms/task (CPU)", 1000 * cpu, "{:.2f}")


def bench_latency(client: Client, k: int, marks: Path, runs: Runs, run: int) -> None:
    starts = marks / f"starts-{run}.txt"
    name = f"latency-{run}"
    spec = {
        "production": name,
        "fields": {"bench": "str"},
        "transformations": [
            # A parent still running keeps "lat" Active (a transformation whose parents are
            # all Completed completes as soon as it has no Unused or Assigned file).
            {"name": "hold", "tasks": 1, "command": "sleep 600", "output_query": {"bench": "lat"}},
            {
                "name": "lat",
                "parents": ["hold"],
                "input_query": {"bench": "lat"},
                "group_size": 1,
                "command": f'echo "$METAPROD_INPUT_LFNS $(date +%s.%N)" >> {starts}',
            },
        ],
    }
    client.productions.create(spec)
    client.productions.start(name)
    time.sleep(1.0)
    registered: dict[str, float] = {}
    for i in range(k):
        lfn = f"/bench/lat{run}/{i:04d}"
        registered[lfn] = time.time()
        client.catalog.register_files([{"lfn": lfn, "metadata": {"bench": "lat"}}])
        time.sleep(0.3)
    deadline = time.monotonic() + 60
    started: dict[str, float] = {}
    while time.monotonic() < deadline:
        if starts.exists():
            started = {}
            for line in starts.read_text().splitlines():
                lfn, _, stamp = line.rpartition(" ")
                started[lfn] = float(stamp)
            if len(started) >= k:
                break
        time.sleep(0.2)
    client.productions.stop(name, kill=True)
    # A job that did not start within the wait counts as an infinite latency: no sample is
    # dropped, and the percentiles say so when too many are missing.
    latencies = sorted(started[lfn] - t if lfn in started else math.inf for lfn, t in registered.items())
    timed_out = sum(1 for x in latencies if x == math.inf)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    p50 = statistics.median_high(latencies)
    print(f"(b) registration -> job start, {k} files registered one at a time (group_size 1):")
    print(
        f"    p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms "
        f"(target p50 < 1 s); {timed_out} of {k} not started within 60 s (counted as infinite)"
    )
    runs.add("(b) p50 ms", p50 * 1000)
    runs.add("(b) p95 ms", p95 * 1000)
    runs.add("(b) timed out", timed_out)


def bench_grouping(db_url: str, m: int, group_size: int, runs: Runs) -> None:
    db = Database(db_url)
    upgrade(db)
    try:
        with db.session_scope() as session:
            spec = {
                "production": "grouping",
                "fields": {"bench": "str"},
                # g is grouped by metaprod; the raw baselines (grouping_raw) group the same
                # files again for per_file and per_task, their rows inserted after g's run.
                "transformations": [
                    {"name": name, "input_query": {"bench": "g"}, "group_size": group_size, "command": "true"}
                    for name in ("g", "per_file", "per_task")
                ],
            }
            create_production(session=session, spec=spec, principal=Principal("bench", Role.ADMIN, "bench"))
            session.execute(update(Transformation).values(status=TransformationStatus.ACTIVE.value))
            tids = dict(session.execute(select(Transformation.name, Transformation.id)).all())  # type: ignore[arg-type]
        tid = tids["g"]
        setup = time.monotonic()
        conn, cur, ph, stamp = raw_cursor(db)
        batch = 50_000

        def attach(transformation_id: int, with_files: bool) -> None:
            for first in range(1, m + 1, batch):
                ids = range(first, min(m + 1, first + batch))
                if db.is_sqlite:
                    cur.execute("BEGIN IMMEDIATE")  # the raw connection is in autocommit
                if with_files:
                    cur.executemany(
                        f"INSERT INTO files (id, lfn, pfn, size, checksum, created_at) VALUES ({', '.join([ph] * 6)})",
                        [(i, f"/bench/g/{i:09d}", "", 1000, "", stamp) for i in ids],
                    )
                cur.executemany(
                    "INSERT INTO transformation_files (transformation_id, file_id, status, error_count, updated_at) "
                    f"VALUES ({', '.join([ph] * 5)})",
                    [(transformation_id, i, FileStatus.UNUSED.value, 0, stamp) for i in ids],
                )
                conn.commit()

        attach(tid, with_files=True)
        setup = time.monotonic() - setup
        cycles = 0
        start = time.monotonic()
        while True:
            with db.session_scope() as session:
                result = dbtasks.create_tasks(session=session, transformation_id=tid)
            cycles += 1
            if result is None or result.tasks == 0:
                break
        elapsed = time.monotonic() - start
        with db.session_scope(readonly=True) as session:
            left = session.scalar(
                select(func.count())
                .select_from(TransformationFile)
                .where(TransformationFile.status == FileStatus.UNUSED.value)
            )
        assert left == 0, left
        print(f"(c) {m} Unused files grouped into tasks of {group_size} (setup {setup:.1f} s, untimed):")
        print(f"    {elapsed:.2f} s in {cycles} create_tasks cycles: {m / elapsed:,.0f} files/s (target >= 100,000/s)")
        print("    (grouping includes each task's signature, reuse by content: its inputs' checksums read and hashed)")
        runs.add("(c) files/s", m / elapsed)
        attach(tids["per_file"], with_files=False)
        n, raw = grouping_raw.per_file(conn, cur, ph, stamp, tids["per_file"], group_size, db.is_sqlite)
        assert n == m, n
        print(
            f"    raw, a task_inputs row and a status update per file (the floor of this schema): {m / raw:,.0f} "
            f"files/s; metaprod / raw {raw / elapsed:.2f}"
        )
        attach(tids["per_task"], with_files=False)
        n, packed = grouping_raw.per_task(conn, cur, ph, stamp, tids["per_task"], group_size, db.is_sqlite)
        assert n == m, n
        print(f"    raw, one row per task, file ids packed, no row written per file: {m / packed:,.0f} files/s")
        conn.close()
        runs.add("(c) raw per-file files/s", m / raw)
        runs.add("(c) metaprod / raw", raw / elapsed, "{:.2f}")
        runs.add("(c) raw per-task files/s", m / packed)
    finally:
        db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--latency-files", type=int, default=50)
    parser.add_argument("--group-files", type=int, default=1_000_000)
    parser.add_argument("--group-size", type=int, default=10)
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: a,b,c")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    parser.add_argument("--runs", type=int, default=1, help="repeat each part; print min/median/max of each figure")
    args = parser.parse_args()
    runs = Runs()
    skip = set(filter(None, args.skip.split(",")))
    workdir = Path(tempfile.mkdtemp(prefix="metaprod-pipeline-bench-"))
    print(f"database: {args.db}; cpus: {os.cpu_count()}; python {sys.version.split()[0]}")
    try:
        if not {"a", "b"} <= skip:
            data_dir = workdir / "data"
            data_dir.mkdir()
            marks = workdir / "marks"  # written by the latency commands, outside the data directory
            marks.mkdir()
            AGENTS["sandbox_writable"] = [str(marks)]
            measured: list[tuple[float, float]] = []
            with database_url(args.db, workdir) as url, metaprod_up(data_dir, url) as (client, pid):
                for run in range(args.runs):
                    if "a" not in skip:
                        measured.append(bench_throughput(client, pid, args.tasks, url, runs, run))
                    if "b" not in skip:
                        bench_latency(client, args.latency_files, marks, runs, run)
            if "a" not in skip:
                bare = workdir / "data-nosandbox"
                bare.mkdir()
                with database_url(args.db, workdir) as url, metaprod_up(bare, url, "none") as (client, pid):
                    for run in range(args.runs):
                        off = bench_throughput(client, pid, args.tasks, url, runs, run, " no sandbox")
                        sandbox_cost(measured[run], off, runs)
        if "c" not in skip:
            for _ in range(args.runs):
                with database_url(args.db, workdir) as url:
                    bench_grouping(url, args.group_files, args.group_size, runs)
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
