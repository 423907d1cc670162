"""Benchmark: the summaries (production list, production progress, the dashboard's
productions page, /metrics) at scale, read from the status counters (never a scan).

    .venv/bin/python bench/bench_summaries.py [--productions 1000] [--files 10000000] [--db URL]
        [--warm 20] [--scan]

Fills a fresh database (SQLite in a temporary directory unless --db names a server, where a
fresh database is created and dropped) with N productions of 3 transformations each (a root
of 100 tasks, two children), F files spread over the children with their tasks (100 files
each) and attempts, and the status counters as the pipeline keeps them. Raw multi-row
inserts, a few productions at a time (memory stays flat at 10 million files). Then times,
each cold (first call) and warm (median of --warm calls): `production list` and
`production progress` through the real gRPC server and client, the summary the dashboard
computes (db.monitoring.overview, uncached), the productions page and /metrics over HTTP
(the dashboard caches what it reads 5 s: cold is the computed one; a fresh dashboard's page
reads only its rows' counters, db.production_page), against the target (200 ms) and a raw
baseline: one SELECT of the whole counters table; with the process's CPU time of each (the
load of a shared machine stretches the wall time, much less the CPU time). --scan also
times the grouped scan of tasks and files that the summaries made before the counters.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from metaprod.clients import connect
from metaprod.db import monitoring
from metaprod.db.migrate import upgrade
from metaprod.db.models import (
    CatalogFile,
    JobAttempt,
    Production,
    StatusCounter,
    Task,
    Transformation,
    TransformationFile,
)
from metaprod.db.querysql import bind_value, executemany
from metaprod.db.session import Database, sqlite_url
from metaprod.db.tokens import create_token
from metaprod.services.app import build_server
from metaprod.services.auth import Authenticator
from metaprod.services.dashboard import Dashboard, DashboardServer
from rawrows import TRANSFORMATION_COLUMNS
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

TARGET_MS = 200.0
FILE_STATUSES = ("Processed", "Processed", "Processed", "Unused", "Assigned", "Problematic")
FILES_PER_TASK = 100
PRODUCTION_STATUSES = ("Active", "Completed", "Partial", "Failed")
PRODUCTIONS_PER_BATCH = 20
TASK_COLUMNS = ("id", "transformation_id", "task_index", "status", "attempt", "attempts_base", "backend")
TASK_COLUMNS += ("created_at", "updated_at")
ATTEMPT_COLUMNS = ("task_id", "attempt", "status", "backend", "submitted_at", "started_at", "finished_at")
P_COLUMNS = ("id", "name", "live_name", "description", "status", "owner", "spec", "purge_outputs")
P_COLUMNS += ("created_at", "updated_at")


def _task_status(file_status: str) -> str:
    return {"Processed": "Done", "Unused": "Created", "Assigned": "Running", "Problematic": "Failed"}[file_status]


def fill(database: Database, productions: int, files: int) -> str:
    """Raw inserts a few productions per transaction; the counters are counted on the way."""
    now = datetime.now(UTC)
    per_child = max(1, files // (productions * 2))
    fid = task_id = 0
    counts: dict[tuple[int, str, str], int] = {}

    def count(tid: int, what: str, status: str, n: int = 1) -> None:
        counts[(tid, what, status)] = counts.get((tid, what, status), 0) + n

    for first in range(1, productions + 1, PRODUCTIONS_PER_BATCH):
        last = min(productions, first + PRODUCTIONS_PER_BATCH - 1)
        with database.session_scope() as session:
            when = bind_value(session, Production.__table__.c.created_at, now)  # type: ignore[attr-defined]
            p_rows = [
                (
                    p,
                    f"prod-{p:04d}",
                    f"prod-{p:04d}",
                    "",
                    PRODUCTION_STATUSES[p % 4],
                    f"user{p % 7}",
                    "{}",
                    0,
                    when,
                    when,
                )
                for p in range(first, last + 1)
            ]
            executemany(session, Production.__table__, P_COLUMNS, p_rows)  # type: ignore[arg-type]
            t_rows: list[tuple[Any, ...]] = []
            task_rows: list[tuple[Any, ...]] = []
            attempt_rows: list[tuple[Any, ...]] = []
            file_rows: list[tuple[Any, ...]] = []
            tf_rows: list[tuple[Any, ...]] = []
            for p in range(first, last + 1):
                for k, name in enumerate(("gen", "reco", "merge")):
                    tid = (p - 1) * 3 + k + 1
                    root = k == 0
                    query = None if root else '{"datatype": "sim"}'
                    t_rows.append((tid, p, name, "Active", "{}", query, 100 if root else None, 3, 0, "local", "true"))
                    t_rows[-1] += (0, "standard", 1, when, when)
                    if root:
                        for i in range(100):
                            task_id += 1
                            status = "Done" if i < 90 else "Failed"
                            task_rows.append((task_id, tid, i, status, 1, 0, "local", when, when))
                            attempt_rows.append((task_id, 1, status, "local", when, when, when))
                            count(tid, "task", status)
                            count(tid, "attempt", status)
                        continue
                    for i in range(per_child):
                        fid += 1
                        status = FILE_STATUSES[(i // FILES_PER_TASK) % len(FILE_STATUSES)]
                        file_rows.append((fid, f"/prod-{p:04d}/{name}/f{fid}.dat", "", 0, "", when))
                        tf_rows.append((tid, fid, status, 0, when))
                        count(tid, "file", status)
                        if i % FILES_PER_TASK == 0:
                            task_id += 1
                            t_status = _task_status(status)
                            task_rows.append((task_id, tid, i // FILES_PER_TASK, t_status, 1, 0, "local", when, when))
                            count(tid, "task", t_status)
                            if t_status in ("Done", "Failed"):
                                attempt_rows.append((task_id, 1, t_status, "local", when, when, when))
                                count(tid, "attempt", t_status)
            executemany(session, Transformation.__table__, TRANSFORMATION_COLUMNS, t_rows)  # type: ignore[arg-type]
            executemany(
                session, CatalogFile.__table__, ("id", "lfn", "pfn", "size", "checksum", "created_at"), file_rows
            )  # type: ignore[arg-type]
            tf_columns = ("transformation_id", "file_id", "status", "error_count", "updated_at")
            executemany(session, TransformationFile.__table__, tf_columns, tf_rows)  # type: ignore[arg-type]
            executemany(session, Task.__table__, TASK_COLUMNS, task_rows)  # type: ignore[arg-type]
            executemany(session, JobAttempt.__table__, ATTEMPT_COLUMNS, attempt_rows)  # type: ignore[arg-type]
        print(f"  {last} productions, {fid:,} files", end="\r", flush=True)
    count(0, "catalog", "files", fid)
    with database.session_scope() as session:
        rows = [(tid, what, status, n) for (tid, what, status), n in sorted(counts.items())]
        session.execute(text("DELETE FROM status_counters"))  # the migration's (0 files)
        executemany(session, StatusCounter.__table__, ("transformation_id", "what", "status", "n"), rows)  # type: ignore[arg-type]
        _, secret = create_token(session=session, name="bench", role="reader")
    print()
    return secret


def measure(label: str, call: Callable[[], object], warm: int, results: list[tuple[str, float, float, float]]) -> None:
    """Wall times against the target, and the process's CPU time beside them (the server and
    the dashboard run in this process): on a shared machine the wall time follows the load,
    the CPU time much less."""
    cpu = time.process_time()
    start = time.perf_counter()
    call()
    cold = (time.perf_counter() - start) * 1000
    cold_cpu = (time.process_time() - cpu) * 1000
    times, cpus = [], []
    for _ in range(warm):
        cpu = time.process_time()
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    median, worst = statistics.median(times), max(times)
    results.append((label, cold, median, worst))
    verdict = "ok" if max(cold, median) <= TARGET_MS else "OVER"
    print(
        f"{label:40s} cold {cold:8.1f} ms  warm median {median:8.1f} ms  max {worst:8.1f} ms"
        f"  (target {TARGET_MS:.0f} ms: {verdict}); CPU cold {cold_cpu:.0f} ms, warm median"
        f" {statistics.median(cpus):.0f} ms",
        flush=True,
    )


def http_get(url: str, token: str) -> Callable[[], object]:
    def get() -> object:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=300) as response:
            body = response.read()
            assert response.status == 200, url
            return body

    return get


def run(database: Database, args: argparse.Namespace) -> None:
    upgrade(database)
    start = time.perf_counter()
    token = fill(database, args.productions, args.files)
    print(f"filled {args.productions} productions, {args.files:,} files in {time.perf_counter() - start:.1f} s")
    results: list[tuple[str, float, float, float]] = []
    with database.session_scope() as session:
        admin_token = create_token(session=session, name="bench-admin", role="admin")[1]
    middle = f"prod-{args.productions // 2:04d}"

    def raw_counters() -> object:
        with database.session_scope(readonly=True) as session:
            return session.connection().exec_driver_sql("SELECT * FROM status_counters").fetchall()

    measure("baseline: SELECT * FROM status_counters", raw_counters, args.warm, results)

    def overview() -> object:
        with database.session_scope(readonly=True) as session:
            return monitoring.overview(session=session)

    measure("dashboard summary (overview, uncached)", overview, args.warm, results)
    server = build_server(database, address="127.0.0.1:0", max_workers=8)
    server.start()
    client = connect(server.address, admin_token, timeout=300, retries=0)
    try:
        listed = client.productions.list()
        assert len(listed) == args.productions, len(listed)
        measure("gRPC production list", client.productions.list, args.warm, results)
        measure(f"gRPC production progress {middle}", lambda: client.productions.progress(middle), args.warm, results)
    finally:
        client.close()
        server.stop(grace=1.0)
    dashboard = DashboardServer(Dashboard(database, Authenticator(database)), host="127.0.0.1", port=0)
    dashboard.start()
    try:
        port = dashboard.server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        measure("dashboard productions page /", http_get(base + "/", token), args.warm, results)
        dashboard_fresh = DashboardServer(Dashboard(database, Authenticator(database)), host="127.0.0.1", port=0)
        dashboard_fresh.start()
        try:
            fresh_port = dashboard_fresh.server.servers[0].sockets[0].getsockname()[1]
            # A fresh dashboard: /metrics computes the summary on its first request (cold).
            measure("/metrics", http_get(f"http://127.0.0.1:{fresh_port}/metrics", token), args.warm, results)
        finally:
            dashboard_fresh.stop()
    finally:
        dashboard.stop()
    if args.scan:
        start = time.perf_counter()
        with database.session_scope(readonly=True) as session:
            for model in (Task, TransformationFile):
                m: Any = model
                session.execute(
                    select(m.transformation_id, m.status, func.count()).group_by(m.transformation_id, m.status)
                ).all()
        print(
            f"{'before the counters: grouped scan':40s} {(time.perf_counter() - start) * 1000:8.1f} ms"
            " (tasks and files)"
        )
    worst = max(max(cold, median) for _, cold, median, _ in results[1:])
    print(f"worst summary {worst:.1f} ms vs target {TARGET_MS:.0f} ms: {'met' if worst <= TARGET_MS else 'NOT met'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--productions", type=int, default=1000)
    parser.add_argument("--files", type=int, default=10_000_000)
    parser.add_argument("--db", default="", help="a server URL (mysql://root@127.0.0.1:3306); SQLite if empty")
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--scan", action="store_true", help="also time the grouped scan the counters replace")
    args = parser.parse_args()
    if not args.db:
        with tempfile.TemporaryDirectory() as tmp:
            database = Database(sqlite_url(Path(tmp)))
            try:
                run(database, args)
            finally:
                database.dispose()
        return 0
    server = make_url(args.db)
    name = f"mp_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.set(database=""))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    try:
        database = Database(server.set(database=name).render_as_string(hide_password=False))
        try:
            run(database, args)
        finally:
            database.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
