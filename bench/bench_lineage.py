"""Benchmark: `catalog lineage` of a file at the end of a 10-step chain over 100,000 files.

    .venv/bin/python bench/bench_lineage.py [--files 100000] [--steps 10] [--db sqlite|mysql://root@127.0.0.1:3306]

Builds, with direct set-based inserts into a fresh database, STEPS generations of FILES/STEPS
files each: file i of generation g (g > 0) was made from files i and i+1 (mod the width) of
generation g-1, so every file has 2 inputs, paths cross (diamonds) and the lineage of a last
file holds 2 + 3 + ... + (STEPS + 1) ancestors. Then times, median of --repeat runs each:

1. the GetLineage call through a real server in this process and the Python client (the CLI's path),
2. the domain function `db.lineage.lineage` alone (two recursive CTEs and the lookup of the file),
3. the raw baseline: the same two recursive CTEs as hand-written SQL on a DB-API cursor,

for a file of the last generation (ancestors) and one of the first (descendants), checking
that every path finds the same files.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metaprod.clients import connect
from metaprod.db import lineage
from metaprod.db.models import CatalogFile, ProducedFileInput, utcnow
from metaprod.db.session import Database
from metaprod.db.tokens import create_token
from metaprod.services.app import build_server
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import fresh_database

CHUNK = 20_000
RAW_WALK = """
WITH RECURSIVE walk(id, depth) AS (
    SELECT {follow}, 1 FROM file_inputs WHERE {start} = {param}
    UNION
    SELECT fi.{follow}, walk.depth + 1 FROM file_inputs fi JOIN walk ON fi.{start} = walk.id
    WHERE walk.depth < {max_depth}
)
SELECT f.lfn FROM (SELECT id, MIN(depth) AS depth FROM walk GROUP BY id) w JOIN files f ON f.id = w.id
ORDER BY w.depth, f.lfn
"""


def lfn(step: int, i: int) -> str:
    return f"/bench/step{step:02d}/file_{i:07d}.dat"


def build(db: Database, files: int, steps: int) -> int:
    """STEPS generations of files // STEPS files; returns the width. Ids: step * width + i + 1."""
    width = files // steps
    now = utcnow()
    with db.session_scope() as session:
        for step in range(steps):
            rows: list[dict[str, Any]] = [
                {"id": step * width + i + 1, "lfn": lfn(step, i), "size": 1, "checksum": "", "created_at": now}
                for i in range(width)
            ]
            if step:
                for row in rows:
                    row |= {"producer_task_id": step * width + row["id"], "producer_attempt": 1}
            for start in range(0, width, CHUNK):
                session.execute(insert(CatalogFile), rows[start : start + CHUNK])
            if step:
                edges = [
                    {"file_id": step * width + i + 1, "position": p, "input_file_id": (step - 1) * width + j + 1}
                    for i in range(width)
                    for p, j in enumerate((i, (i + 1) % width))
                ]
                for start in range(0, len(edges), CHUNK):
                    session.execute(insert(ProducedFileInput), edges[start : start + CHUNK])
    return width


def median_ms(call: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, result


def raw_lineage(db: Database, name: str) -> tuple[list[str], list[str]]:
    """Both directions with hand-written SQL on the DB-API connection (the floor)."""
    with db.engine.connect() as conn:
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        param = "?" if db.engine.dialect.name == "sqlite" else "%s"
        cur.execute(f"SELECT id FROM files WHERE lfn = {param}", (name,))
        (file_id,) = cur.fetchone()
        out = []
        for start, follow in (("file_id", "input_file_id"), ("input_file_id", "file_id")):
            sql = RAW_WALK.format(start=start, follow=follow, param=param, max_depth=lineage.MAX_DEPTH)
            cur.execute(sql, (file_id,))
            out.append([r[0] for r in cur.fetchall()])
        cur.close()
        return out[0], out[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--db", default="sqlite", help="sqlite, or a server URL such as mysql://root@127.0.0.1:3306")
    parser.add_argument("--repeat", type=int, default=21)
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="metaprod-bench-") as tmp, fresh_database(opts.db, Path(tmp)) as db:
        start = time.perf_counter()
        width = build(db, opts.files, opts.steps)
        print(f"built {opts.steps} x {width} files, {2 * (opts.steps - 1) * width} provenance edges "
              f"in {time.perf_counter() - start:.1f} s ({opts.db})", flush=True)  # fmt: skip
        with db.session_scope() as session:
            _, token = create_token(session=session, name="bench", role="admin")
        server = build_server(db, address="127.0.0.1:0", max_workers=4)
        server.start()
        client = connect(server.address, token, timeout=60)
        try:
            expected = sum(k + 1 for k in range(1, opts.steps))
            for label, name in (("last", lfn(opts.steps - 1, width // 2)), ("first", lfn(0, width // 2))):
                rpc_ms, got = median_ms(lambda n=name: client.catalog.lineage(n), opts.repeat)  # type: ignore[misc]

                def domain(n: str = name) -> lineage.Lineage:
                    with db.session_scope(readonly=True) as session:
                        return lineage.lineage(session=session, lfn=n)

                dom_ms, dom = median_ms(domain, opts.repeat)
                raw_ms, raw = median_ms(lambda n=name: raw_lineage(db, n), opts.repeat)  # type: ignore[misc]
                assert isinstance(got, type(client.catalog.lineage(name)))
                assert isinstance(dom, lineage.Lineage) and isinstance(raw, tuple)
                assert (list(dom.ancestors), list(dom.descendants)) == (raw[0], raw[1])
                assert (got.ancestors, got.descendants) == (dom.ancestors, dom.descendants)
                found = len(dom.ancestors) + len(dom.descendants)
                assert found == expected, (found, expected)
                print(f"{label} file ({len(dom.ancestors)} ancestors, {len(dom.descendants)} descendants): "
                      f"RPC {rpc_ms:.2f} ms, domain {dom_ms:.2f} ms, raw SQL {raw_ms:.2f} ms "
                      f"(RPC/raw {rpc_ms / raw_ms:.1f}x)", flush=True)  # fmt: skip
        finally:
            client.close()
            server.stop(grace=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
