"""Catalog ingest and search benchmark.

    python bench/bench_ingest.py [--files 1000000] [--db sqlite|mysql://root@127.0.0.1:3306]
                                 [--active 3] [--runs 1]

1. Starts a real metaprod server in this process on a fresh database (a temporary SQLite
   file, or a new MariaDB database created here and dropped at the end) and registers N files
   with 4 metadata keys through the Python client's streaming RegisterFiles call, while
   --active transformations (default 3, as in production: routing is part of registering)
   are Active with input queries that take part of the files (the file router attaches them).
2. Inserts the same rows (files + file_metadata) with raw DB-API `executemany` into a second
   fresh database of the same schema, ids chosen by the script: the floor of what any
   registration path can cost on this database. The two paths alternate in --rounds rounds.
3. Prints files/s of both and their ratio, then times a 3-key range query (run range,
   energy >, datatype =) over the N files through the FindFiles call, with its count: cold
   (a new server and connection pool on the database, and the OS page cache dropped when this
   process may: root; a MariaDB server's buffer pool cannot be emptied from here and stays
   warm, which the output says) and then warm (the same query again).
With --runs N all of it is repeated on fresh databases and every figure is printed as
min / median / max.

Both paths start from the same pre-generated Python data, and each commits every --batch files.
"""

from __future__ import annotations

import argparse
import os
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
from metaprod.db.querysql import choose_driver, compile_ids, load_fields
from metaprod.db.session import Database
from metaprod.db.tokens import create_token
from metaprod.services.app import build_server
from runs import Runs
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

FIELDS = {"run": "int", "energy": "float", "datatype": "str", "site": "str"}
QUERY = "run>=1000 run<1100 energy>50 datatype=raw"
# What the Active transformations take (about 1/6, 1/3 and 1/8 of the files).
ACTIVE_QUERIES = ["datatype=raw run<5000", "datatype=sim", "site=CERN energy>50", "datatype=reco site=FNAL"]
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


class ClientPath:
    """A real server on `db` and a client: registers rows through streaming RegisterFiles."""

    def __init__(self, db: Database, *, fields: bool = True) -> None:
        self.db = db
        with db.session_scope() as session:
            _, token = create_token(session=session, name=f"bench-{uuid.uuid4().hex[:8]}", role="admin")
        self.server = build_server(db, address="127.0.0.1:0", max_workers=8)
        self.server.start()
        self.client = connect(self.server.address, token, timeout=600)
        for name, ftype in FIELDS.items():
            if fields:
                self.client.catalog.add_field(name, ftype)

    def activate(self, n: int) -> None:
        """n catalog-fed transformations, Active: registration routes every file against them."""
        queries = ACTIVE_QUERIES[:n]
        if not queries:
            return
        spec = {
            "production": "ingest-routing",
            "fields": FIELDS,
            "transformations": [
                {"name": f"t{i}", "input_query": q, "group_size": 100, "command": "true"} for i, q in enumerate(queries)
            ],
        }
        self.client.productions.create(spec)
        self.client.productions.start("ingest-routing")

    def attached(self) -> int:
        with self.db.session_scope(readonly=True) as session:
            return int(session.scalar(text("SELECT COUNT(*) FROM transformation_files")) or 0)

    def register(self, rows: list[Row], batch: int) -> None:
        files = ({"lfn": lfn, "metadata": md} for lfn, md in rows)
        result = self.client.catalog.register_files(files, batch_size=batch)
        assert result.registered == len(rows), result

    def close(self) -> None:
        self.client.close()
        self.server.stop(grace=1.0)


class RawPath:
    """DB-API executemany into `db` (same schema and connection tuning), ids chosen here."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn = db.engine.raw_connection()
        self.cur = self.conn.cursor()
        self.ph = "?" if db.is_sqlite else "%s"
        self.field_ids = {name: i + 1 for i, name in enumerate(FIELDS)}
        for name, fid in self.field_ids.items():
            self.cur.execute(
                f"INSERT INTO metadata_fields (id, name, type, created_at) VALUES ({', '.join([self.ph] * 4)})",
                (fid, name, FIELDS[name], utcnow().replace(tzinfo=None).isoformat(" ")),
            )
        self.conn.commit()
        self.next_id = 1

    def register(self, rows: list[Row], batch: int) -> None:
        ph, cur = self.ph, self.cur
        files_sql = f"INSERT INTO files (id, lfn, pfn, size, checksum, created_at) VALUES ({', '.join([ph] * 6)})"
        md_sql = (
            "INSERT INTO file_metadata (file_id, field_id, value_int, value_float, value_str) "
            f"VALUES ({', '.join([ph] * 5)})"
        )
        run, energy, datatype, site = (self.field_ids[k] for k in FIELDS)
        for first in range(0, len(rows), batch):
            if self.db.is_sqlite:
                cur.execute("BEGIN IMMEDIATE")
            created = utcnow().replace(tzinfo=None)
            stamp: Any = created.isoformat(" ") if self.db.is_sqlite else created
            chunk = rows[first : first + batch]
            ids = range(self.next_id, self.next_id + len(chunk))
            self.next_id += len(chunk)
            cur.executemany(files_sql, [(i, lfn, "", 0, "", stamp) for i, (lfn, _) in zip(ids, chunk, strict=True)])
            md_rows: list[tuple[Any, ...]] = []
            for i, (_, md) in zip(ids, chunk, strict=True):
                md_rows.append((i, run, md["run"], None, None))
                md_rows.append((i, energy, None, md["energy"], None))
                md_rows.append((i, datatype, None, None, md["datatype"]))
                md_rows.append((i, site, None, None, md["site"]))
            cur.executemany(md_sql, md_rows)
            self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def drop_os_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def timed_find(client: Any, db: Database, runs: Runs) -> None:
    with db.session_scope(readonly=True) as session:
        fields = load_fields(session)
        query = catalog.parse_query(QUERY, catalog.catalog_schema(session=session))
        stmt = compile_ids(query, fields, driver=choose_driver(session, query, fields))
        assert stmt is not None
        sql = str(stmt.compile(dialect=session.connection().dialect, compile_kwargs={"literal_binds": True}))
        explain = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
        plan = session.execute(text(explain + sql)).all()
    for attempt in ("cold", "warm"):
        start = time.perf_counter()
        found = sum(1 for _ in client.catalog.find(QUERY, with_metadata=False))
        took = time.perf_counter() - start
        runs.add(f"find {attempt} s", took, "{:.3f}")
        print(f"find [{QUERY}] ({attempt}): {found} files in {took:.3f} s (FindFiles RPC, streamed)")
    start = time.perf_counter()
    found = sum(1 for _ in client.catalog.find(QUERY, with_metadata=True))
    print(f"find with metadata: {found} files in {time.perf_counter() - start:.3f} s")
    start = time.perf_counter()
    with db.session_scope(readonly=True) as session:
        count = catalog.count_files(session=session, query=MetaQuery.from_string(QUERY, query.schema))
    print(f"count (SQL only): {count} in {time.perf_counter() - start:.3f} s")
    print("plan:", *(" | ".join(str(c) for c in row) for row in plan), sep="\n  ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--db", default="sqlite", help="sqlite, or a server URL such as mysql://root@127.0.0.1:3306")
    parser.add_argument("--batch", type=int, default=10_000, help="files per client request / raw transaction")
    parser.add_argument("--rounds", type=int, default=10, help="alternations between the two paths")
    parser.add_argument("--active", type=int, default=3, help=f"Active transformations (0 to {len(ACTIVE_QUERIES)})")
    parser.add_argument("--runs", type=int, default=1, help="repeat; print min/median/max of each figure")
    opts = parser.parse_args(argv)
    print(f"generating {opts.files} files ...", flush=True)
    rows = generate(opts.files)
    runs = Runs()
    for run in range(opts.runs):
        if opts.runs > 1:
            print(f"--- run {run + 1} of {opts.runs}")
        measure(opts, rows, runs)
    print(f"summary over {opts.runs} run(s), {opts.files} files, {opts.active} Active transformations, {opts.db}:")
    print(runs.summary())
    return 0


def measure(opts: argparse.Namespace, rows: list[Row], runs: Runs) -> None:
    client_s = raw_s = 0.0
    per_round = -(-opts.files // opts.rounds)
    with tempfile.TemporaryDirectory(prefix="metaprod-bench-") as tmp:
        workdir = Path(tmp)
        with fresh_database(opts.db, workdir) as client_db, fresh_database(opts.db, workdir) as raw_db:
            client, raw = ClientPath(client_db), RawPath(raw_db)
            client.activate(opts.active)
            # Alternate the two paths round by round: both databases grow alike, and a load
            # change on the machine weighs on both measures.
            for first in range(0, opts.files, per_round):
                chunk = rows[first : first + per_round]
                start = time.perf_counter()
                client.register(chunk, opts.batch)
                client_s += time.perf_counter() - start
                start = time.perf_counter()
                raw.register(chunk, opts.batch)
                raw_s += time.perf_counter() - start
                done = first + len(chunk)
                print(f"  {done} files: client {done / client_s:,.0f} files/s, raw {done / raw_s:,.0f} files/s",
                      flush=True)  # fmt: skip
            raw.close()
            attached = client.attached()
            client.close()
            # Cold: a new server and connection pool; the OS page cache dropped if we may.
            client_db.dispose()
            dropped = drop_os_caches()
            cold = ClientPath(client_db, fields=False)
            cache = "dropped" if dropped else "NOT dropped (not root)"
            print(
                f"cold find: new server and connections; OS page cache {cache}"
                + ("; MariaDB's buffer pool not emptied (a shared server)" if not client_db.is_sqlite else "")
            )
            timed_find(cold.client, client_db, runs)
            cold.close()
    n = opts.files
    client_rate, raw_rate = n / client_s, n / raw_s
    print(f"client path: {n} files in {client_s:.1f} s = {client_rate:,.0f} files/s ({4 * client_rate:,.0f} values/s)")
    print(f"  with {opts.active} Active transformations: {attached:,} attachments made while registering")
    print(f"raw path:    {n} files in {raw_s:.1f} s = {raw_rate:,.0f} files/s ({4 * raw_rate:,.0f} values/s)")
    print(f"ratio client/raw: {client_rate / raw_rate:.2f} (target >= 0.3, goal 0.5)")
    runs.add("client files/s", client_rate)
    runs.add("raw files/s", raw_rate)
    runs.add("ratio client/raw", client_rate / raw_rate, "{:.2f}")


if __name__ == "__main__":
    sys.exit(main())
