"""Benchmark: the dashboard's page and /metrics times at scale.

    .venv/bin/python bench/bench_dashboard.py [--productions 1000] [--files 1000000] [--db URL]

Fills a fresh database (SQLite in a temporary directory unless --db) with N productions of
3 transformations each (a root of 100 tasks, two children), F files spread over the children
(with their task and attempt rows), a token, then serves the dashboard on a free port and
times, over HTTP with the token: the productions page, /metrics, one production's page, a
transformation's page deep in its files (keyset paging), and the JSON API. It prints the
first (cold: the summary is made) and the median of 20 warm requests of each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from metaprod.db.migrate import upgrade
from metaprod.db.models import (
    CatalogFile,
    JobAttempt,
    Production,
    Task,
    Transformation,
    TransformationFile,
)
from metaprod.db.querysql import bind_value, executemany
from metaprod.db.session import Database, sqlite_url
from metaprod.db.tokens import create_token
from metaprod.services.auth import Authenticator
from metaprod.services.dashboard import Dashboard, DashboardServer
from rawrows import TRANSFORMATION_COLUMNS

STATUSES = ("Processed", "Processed", "Processed", "Unused", "Assigned", "Problematic")


def fill(database: Database, productions: int, files: int) -> str:
    now = datetime.now(UTC)
    per_child = max(1, files // (productions * 2))
    with database.session_scope() as session:
        when = bind_value(session, Production.__table__.c.created_at, now)  # type: ignore[attr-defined]
        executemany(
            session,
            Production.__table__,  # type: ignore[arg-type]
            (
                "id",
                "name",
                "live_name",
                "description",
                "status",
                "owner",
                "spec",
                "purge_outputs",
                "created_at",
                "updated_at",
            ),
            [
                (
                    p,
                    f"prod-{p:04d}",
                    f"prod-{p:04d}",
                    "",
                    ("Active", "Completed", "Partial", "Failed")[p % 4],
                    f"user{p % 7}",
                    "{}",
                    0,
                    when,
                    when,
                )
                for p in range(1, productions + 1)
            ],
        )
        t_rows: list[tuple[object, ...]] = []
        task_rows: list[tuple[object, ...]] = []
        attempt_rows: list[tuple[object, ...]] = []
        file_rows: list[tuple[object, ...]] = []
        tf_rows: list[tuple[object, ...]] = []
        fid = task_id = 0
        for p in range(1, productions + 1):
            for k, name in enumerate(("gen", "reco", "merge")):
                tid = (p - 1) * 3 + k + 1
                root = k == 0
                t_rows.append(
                    (
                        tid,
                        p,
                        name,
                        "Active",
                        "{}",
                        None if root else '{"datatype": "sim"}',
                        100 if root else None,
                        3,
                        0,
                        "local",
                        "true",
                        0,
                        "standard",
                        1,
                        when,
                        when,
                    )
                )
                if root:
                    for i in range(100):
                        task_id += 1
                        status = "Done" if i < 90 else "Failed"
                        task_rows.append((task_id, tid, i, status, 1, 0, "local", when, when))
                        attempt_rows.append((task_id, 1, status, "local", when, when, when))
                    continue
                for i in range(per_child):
                    fid += 1
                    file_rows.append((fid, f"/prod-{p:04d}/{name}/f{fid}.dat", "", 0, "", when))
                    tf_rows.append((tid, fid, STATUSES[i % len(STATUSES)], 0, when))
        executemany(
            session,
            Transformation.__table__,  # type: ignore[arg-type]
            TRANSFORMATION_COLUMNS,
            t_rows,
        )
        executemany(session, CatalogFile.__table__, ("id", "lfn", "pfn", "size", "checksum", "created_at"), file_rows)  # type: ignore[arg-type]
        executemany(
            session,
            TransformationFile.__table__,
            ("transformation_id", "file_id", "status", "error_count", "updated_at"),
            tf_rows,
        )  # type: ignore[arg-type]
        executemany(
            session,
            Task.__table__,
            (
                "id",
                "transformation_id",
                "task_index",
                "status",
                "attempt",
                "attempts_base",
                "backend",
                "created_at",
                "updated_at",
            ),
            task_rows,
        )  # type: ignore[arg-type]
        executemany(
            session,
            JobAttempt.__table__,
            ("task_id", "attempt", "status", "backend", "submitted_at", "started_at", "finished_at"),
            attempt_rows,
        )  # type: ignore[arg-type]
        _, secret = create_token(session=session, name="bench", role="reader")
    return secret


def timed(url: str, token: str) -> float:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
        assert response.status == 200, url
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--productions", type=int, default=1000)
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--db", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(args.db or sqlite_url(Path(tmp)))
        upgrade(database)
        start = time.perf_counter()
        token = fill(database, args.productions, args.files)
        print(f"filled {args.productions} productions, {args.files} files in {time.perf_counter() - start:.1f} s")
        server = DashboardServer(Dashboard(database, Authenticator(database)), host="127.0.0.1", port=0)
        server.start()
        port = server.server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        middle = f"prod-{args.productions // 2:04d}"
        paths = {
            "productions page /": "/",
            "/metrics": "/metrics",
            "JSON /api/productions": "/api/productions",
            "production page": f"/productions/{middle}",
            "transformation page, files deep": f"/productions/{middle}/transformations/reco"
            f"?files_after={args.files // 2}",
        }
        for label, path in paths.items():
            cold = timed(base + path, token)
            warm = []
            for _ in range(20):
                warm.append(timed(base + path, token))
                time.sleep(0.05)
            median, worst = statistics.median(warm) * 1000, max(warm) * 1000
            print(f"{label:34s} cold {cold * 1000:8.1f} ms   warm median {median:7.1f} ms  max {worst:7.1f} ms")
        server.stop()
        database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
