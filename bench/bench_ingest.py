"""Catalog ingest and search benchmark.

    python bench/bench_ingest.py [--files 1000000] [--db sqlite|mysql://root@127.0.0.1:3306]

1. Starts a real metaprod server in this process on a fresh database (a temporary SQLite
   file, or a new MariaDB database created here and dropped at the end) and registers N files
   with 4 metadata keys through the Python client's streaming RegisterFiles call.
2. Inserts the same rows (files + file_metadata) with raw DB-API `executemany` into a second
   fresh database of the same schema, ids chosen by the script: the floor of what any
   registration path can cost on this database.
3. Prints files/s of both and their ratio, then times a 3-key range query (run range,
   energy >, datatype =) over the N files through the FindFiles call, with its count.

Both paths start from the same pre-generated Python data, and each commits every --batch files.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from metaprod.clients import connect
from metaprod.core.metaquery import MetaQuery
from metaprod.db import catalog
from metaprod.db.migrate import upgrade
from metaprod.db.models import utcnow
from metaprod.db.querysql import compile_ids, load_fields
from metaprod.db.session import Database
from metaprod.db.tokens import create_token
from metaprod.services.app import build_server
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

FIELDS = {"run": "int", "energy": "float", "datatype": "str", "site": "str"}
QUERY = "run>=1000 run<1100 energy>50 datatype=raw"
Row = tuple[str, dict[str, Any]]


def generate(n: int, seed: int = 1) -> list[Row]:
    """N files as data-taking would make them: ~10,000 runs, random energies, 3 data types."""
    rnd = random.Random(seed)
    datatypes, sites = ["raw", "sim", "reco"], ["CERN", "IN2P3", "FNAL", "RAL"]
    out: list[Row] = []
    for i in range(n):
        run = rnd.randrange(10_000)
        md = {"run": run, "energy": rnd.uniform(0, 100), "datatype": rnd.choice(datatypes), "site": rnd.choice(sites)}
        out.append((f"/bench/data/run{run:05d}/file_{i:09d}.root", md))
    return out


@contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[Database]:
    """A new empty database at head: a SQLite file in `workdir`, or a MariaDB database."""
    if kind == "sqlite":
        db = Database(f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}")
        upgrade(db)
        try:
            yield db
        finally:
            db.dispose()
        return
    server = make_url(kind)
    name = f"mp_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.set(database=""))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    db = Database(server.set(database=name).render_as_string(hide_password=False))
    try:
        upgrade(db)
        yield db
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


def client_path(db: Database, rows: list[Row], batch: int) -> tuple[float, str]:
    """Seconds to register `rows` through the client; and the server's address for the find."""
    with db.session_scope() as session:
        _, token = create_token(session=session, name="bench", role="admin")
    server = build_server(db, address="127.0.0.1:0", max_workers=8)
    server.start()
    client = connect(server.address, token, timeout=600)
    for name, ftype in FIELDS.items():
        client.catalog.add_field(name, ftype)
    files = ({"lfn": lfn, "metadata": md} for lfn, md in rows)
    start = time.perf_counter()
    result = client.catalog.register_files(files, batch_size=batch)
    elapsed = time.perf_counter() - start
    assert result.registered == len(rows), result
    timed_find(client, db)
    client.close()
    server.stop(grace=1.0)
    return elapsed, server.address


def timed_find(client: Any, db: Database) -> None:
    with db.session_scope(readonly=True) as session:
        fields = load_fields(session)
        query = catalog.parse_query(QUERY, catalog.catalog_schema(session=session))
        stmt = compile_ids(query, fields)
        assert stmt is not None
        sql = str(stmt.compile(dialect=session.connection().dialect, compile_kwargs={"literal_binds": True}))
        explain = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
        plan = session.execute(text(explain + sql)).all()
    for attempt in ("cold", "warm"):
        start = time.perf_counter()
        found = sum(1 for _ in client.catalog.find(QUERY, with_metadata=False))
        took = time.perf_counter() - start
        print(f"find [{QUERY}] ({attempt}): {found} files in {took:.3f} s (FindFiles RPC, streamed)")
    start = time.perf_counter()
    with db.session_scope(readonly=True) as session:
        count = catalog.count_files(session=session, query=MetaQuery.from_string(QUERY, query.schema))
    print(f"count (SQL only): {count} in {time.perf_counter() - start:.3f} s")
    print("plan:", *(" | ".join(str(c) for c in row) for row in plan), sep="\n  ")


def raw_path(db: Database, rows: list[Row], batch: int) -> float:
    """Seconds to insert the same rows by DB-API executemany, ids chosen here."""
    field_ids = {name: i + 1 for i, name in enumerate(FIELDS)}
    conn = db.engine.raw_connection()  # the same connection tuning (WAL, ...) as the server's
    try:
        cur = conn.cursor()
        ph = "?" if db.is_sqlite else "%s"
        for name, fid in field_ids.items():
            cur.execute(
                f"INSERT INTO metadata_fields (id, name, type, created_at) VALUES ({ph}, {ph}, {ph}, {ph})",
                (fid, name, FIELDS[name], utcnow().replace(tzinfo=None).isoformat(" ")),
            )
        conn.commit()
        files_sql = f"INSERT INTO files (id, lfn, pfn, size, checksum, created_at) VALUES ({', '.join([ph] * 6)})"
        md_sql = (
            "INSERT INTO file_metadata (file_id, field_id, value_int, value_float, value_str) "
            f"VALUES ({', '.join([ph] * 5)})"
        )
        run, energy, datatype, site = (field_ids[k] for k in FIELDS)
        start = time.perf_counter()
        for first in range(0, len(rows), batch):
            if db.is_sqlite:
                cur.execute("BEGIN IMMEDIATE")
            created = utcnow().replace(tzinfo=None)
            stamp: Any = created.isoformat(" ") if db.is_sqlite else created
            chunk = rows[first : first + batch]
            ids = range(first + 1, first + 1 + len(chunk))
            cur.executemany(files_sql, [(i, lfn, "", 0, "", stamp) for i, (lfn, _) in zip(ids, chunk, strict=True)])
            md_rows: list[tuple[Any, ...]] = []
            for i, (_, md) in zip(ids, chunk, strict=True):
                md_rows.append((i, run, md["run"], None, None))
                md_rows.append((i, energy, None, md["energy"], None))
                md_rows.append((i, datatype, None, None, md["datatype"]))
                md_rows.append((i, site, None, None, md["site"]))
            cur.executemany(md_sql, md_rows)
            conn.commit()
        return time.perf_counter() - start
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--db", default="sqlite", help="sqlite, or a server URL such as mysql://root@127.0.0.1:3306")
    parser.add_argument("--batch", type=int, default=10_000, help="files per client request / raw transaction")
    opts = parser.parse_args(argv)
    print(f"generating {opts.files} files ...", flush=True)
    rows = generate(opts.files)
    with tempfile.TemporaryDirectory(prefix="metaprod-bench-") as tmp:
        workdir = Path(tmp)
        with fresh_database(opts.db, workdir) as db:
            print(f"client path: streaming RegisterFiles on {db.url.get_backend_name()} ...", flush=True)
            client_s, _ = client_path(db, rows, opts.batch)
        with fresh_database(opts.db, workdir) as db:
            print("raw path: DB-API executemany ...", flush=True)
            raw_s = raw_path(db, rows, opts.batch)
    n = opts.files
    client_rate, raw_rate = n / client_s, n / raw_s
    print(f"client path: {n} files in {client_s:.1f} s = {client_rate:,.0f} files/s ({4 * client_rate:,.0f} values/s)")
    print(f"raw path:    {n} files in {raw_s:.1f} s = {raw_rate:,.0f} files/s ({4 * raw_rate:,.0f} values/s)")
    print(f"ratio client/raw: {client_rate / raw_rate:.2f} (target >= 0.3, goal 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
