"""Catalog ingest and search benchmark.

    python bench/bench_ingest.py [--files 10000000] [--db sqlite|mysql://root@127.0.0.1:3306]
                                 [--paths cli,client] [--active 3] [--runs 1]

1. Registers N files with 4 metadata keys into fresh databases (a temporary SQLite file, or a
   new MariaDB database created here and dropped at the end) by each path of --paths, while
   --active transformations (default 3, as in production: routing is part of registering)
   are Active with input queries that take part of the files (the file router attaches them):
   - cli: `metaprod serve` in its own process, and `metaprod catalog import FILE` (another
     process) per round, FILE a JSON Lines file of the round's rows written beforehand
     (untimed): what a user runs. The resident memory (RSS) of both processes is printed
     after every round: it must stay flat as the catalog grows.
   - client: a real server in this process and the Python client's streaming RegisterFiles.
2. Inserts the same rows (files + file_metadata) with raw DB-API `executemany` into another
   fresh database of the same schema, ids chosen by the script: the floor of what any
   registration path can cost on this database. The paths alternate in --rounds rounds.
3. Prints files/s of each and its ratio to raw, then times a 3-key range query (run range,
   energy >, datatype =) over the N files through the FindFiles call, with its count: cold
   (a new server and connection pool on the database, and the OS page cache dropped when this
   process may: root; a MariaDB server's buffer pool cannot be emptied from here and stays
   warm, which the output says) and then warm (the same query again); and the GetFile call
   (`catalog show`, metadata and provenance) and the GetLineage call (provenance walk) for
   random files: per call p50 / max (target < 10 ms).
With --runs N all of it is repeated on fresh databases and every figure is printed as
min / median / max.

The rows of each round are generated from a seed per round (memory stays flat at 10 million
files), the same rows for every path; each path commits every --batch files.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
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


def generate(n: int, first: int = 0, seed: int = 1) -> list[Row]:
    """N files (numbered from `first`) as data-taking would make them: ~10,000 runs, random
    energies, 3 data types. The same (n, first, seed) give the same rows."""
    rnd = random.Random(seed * 1_000_003 + first)
    datatypes, sites = ["raw", "sim", "reco"], ["CERN", "IN2P3", "FNAL", "RAL"]
    out: list[Row] = []
    for i in range(first, first + n):
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a live process, MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class CliPath(ClientPath):
    """`metaprod serve` in its own process on `db`, and `metaprod catalog import FILE` run as
    a user runs it, one process per round; `prepare` writes the round's JSON Lines (untimed)."""

    def __init__(self, db: Database, workdir: Path, *, fields: bool = True) -> None:
        self.db = db
        with db.session_scope() as session:
            _, token = create_token(session=session, name=f"bench-{uuid.uuid4().hex[:8]}", role="admin")
        data_dir = workdir / f"serve-{uuid.uuid4().hex[:8]}"
        data_dir.mkdir(mode=0o700)
        port = free_port()
        self.env = dict(
            os.environ, METAPROD_ADDRESS=f"127.0.0.1:{port}", METAPROD_TOKEN=token, METAPROD_LOG_LEVEL="WARNING"
        )
        self.log = data_dir / "serve.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "metaprod.clients.cli", "serve", "--data-dir", str(data_dir)),
                    *("--db", db.engine.url.render_as_string(hide_password=False)),
                    *("--port", str(port), "--http-port", str(free_port())),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"metaprod serve exited: {self.log.read_text()[-3000:]}")
            try:
                self.client = connect(f"127.0.0.1:{port}", token, timeout=600)
                self.client.health()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for name, ftype in FIELDS.items():
            if fields:
                self.client.catalog.add_field(name, ftype)
        self.jsonl = workdir / f"round-{uuid.uuid4().hex[:8]}.jsonl"
        self.cli_rss_mb: list[float] = []  # peak RSS of each import process

    def prepare(self, rows: list[Row]) -> None:
        with open(self.jsonl, "w", encoding="utf-8") as out:
            for lfn, md in rows:
                out.write(json.dumps({"lfn": lfn, "metadata": md}) + "\n")

    def register(self, rows: list[Row], batch: int) -> None:
        argv = [sys.executable, "-m", "metaprod.clients.cli", "catalog", "import", str(self.jsonl)]
        argv += ["--batch-size", str(batch), "--no-progress", "--json"]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, env=self.env)
            # The peak of its own memory, sampled: ru_maxrss of a child counts this process's
            # pages it was forked with, before its exec.
            peak = 0.0
            while proc.poll() is None:
                with suppress(OSError):
                    peak = max(peak, rss_mb(proc.pid))
                time.sleep(0.1)
            out.seek(0)
            err.seek(0)
            if proc.returncode != 0:
                raise RuntimeError(f"catalog import failed ({proc.returncode}): {err.read().decode()[-2000:]}")
            result = json.loads(out.read())
        assert result["registered"] == len(rows), result
        self.cli_rss_mb.append(peak)

    def memory(self) -> str:
        last = f", last import peak RSS {self.cli_rss_mb[-1]:,.0f} MB" if self.cli_rss_mb else ""
        return f"serve RSS {rss_mb(self.proc.pid):,.0f} MB{last}"

    def close(self) -> None:
        self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.jsonl.unlink(missing_ok=True)


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


def timed_lookups(client: Any, db: Database, runs: Runs, n: int = 200) -> None:
    """GetFile (`catalog show`: metadata and provenance) and GetLineage (the provenance walk)
    for n random files: per call p50 and max, ms."""
    with db.session_scope(readonly=True) as session:
        top = int(session.scalar(text("SELECT MAX(id) FROM files")) or 0)
        ids = random.Random(7).sample(range(1, top + 1), min(n + 1, top))
        lfns = list(session.scalars(text("SELECT lfn FROM files WHERE id IN (" + ",".join(map(str, ids)) + ")")))
    first = lfns.pop()  # another file, for the first call of each kind
    for name, call in (("show", client.catalog.get), ("lineage", client.catalog.lineage)):
        # The server's first call of a kind compiles its statements (SQLAlchemy's cache):
        # printed apart, not among the n calls on random files.
        start = time.perf_counter()
        call(first)
        print(f"{name}: first call {(time.perf_counter() - start) * 1000:.2f} ms")
        took: list[float] = []
        for lfn in lfns:
            start = time.perf_counter()
            call(lfn)
            took.append((time.perf_counter() - start) * 1000)
        took.sort()
        p50, p95, worst = took[len(took) // 2], took[len(took) * 95 // 100], took[-1]
        runs.add(f"{name} p50 ms", p50, "{:.2f}")
        runs.add(f"{name} p95 ms", p95, "{:.2f}")
        runs.add(f"{name} max ms", worst, "{:.2f}")
        print(
            f"{name} ({len(lfns)} random files, RPC): p50 {p50:.2f} ms, p95 {p95:.2f} ms, max {worst:.2f} ms "
            "(target < 10 ms)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000_000)
    parser.add_argument(
        "--paths",
        default="cli,client",
        help="registration paths measured against raw: cli,client; 'none': raw only, the finds on its catalog",
    )
    parser.add_argument("--db", default="sqlite", help="sqlite, or a server URL such as mysql://root@127.0.0.1:3306")
    parser.add_argument("--batch", type=int, default=10_000, help="files per client request / raw transaction")
    parser.add_argument("--rounds", type=int, default=10, help="alternations between the two paths")
    parser.add_argument("--active", type=int, default=3, help=f"Active transformations (0 to {len(ACTIVE_QUERIES)})")
    parser.add_argument("--runs", type=int, default=1, help="repeat; print min/median/max of each figure")
    opts = parser.parse_args(argv)
    opts.paths = [p for p in opts.paths.split(",") if p and p != "none"]
    if set(opts.paths) - {"cli", "client"}:
        parser.error(f"--paths: cli and/or client, not {','.join(opts.paths)}")
    runs = Runs()
    for run in range(opts.runs):
        if opts.runs > 1:
            print(f"--- run {run + 1} of {opts.runs}")
        measure(opts, runs)
    print(f"summary over {opts.runs} run(s), {opts.files} files, {opts.active} Active transformations, {opts.db}:")
    print(runs.summary())
    return 0


def measure(opts: argparse.Namespace, runs: Runs) -> None:
    took = dict.fromkeys([*opts.paths, "raw"], 0.0)
    per_round = -(-opts.files // opts.rounds)
    with tempfile.TemporaryDirectory(prefix="metaprod-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        dbs = {name: stack.enter_context(fresh_database(opts.db, workdir)) for name in took}
        paths: dict[str, Any] = {}
        for name in opts.paths:
            paths[name] = CliPath(dbs[name], workdir) if name == "cli" else ClientPath(dbs[name])
            paths[name].activate(opts.active)
        paths["raw"] = RawPath(dbs["raw"])
        # Alternate the paths round by round: the databases grow alike, and a load change on
        # the machine weighs on every measure.
        for first in range(0, opts.files, per_round):
            chunk = generate(min(per_round, opts.files - first), first)
            for name, path in paths.items():
                if isinstance(path, CliPath):
                    path.prepare(chunk)
                start = time.perf_counter()
                path.register(chunk, opts.batch)
                took[name] += time.perf_counter() - start
            done = first + len(chunk)
            rates = ", ".join(f"{name} {done / s:,.0f} files/s" for name, s in took.items())
            memory = f"; {paths['cli'].memory()}" if "cli" in paths else ""
            print(f"  {done} files: {rates}{memory}", flush=True)
            del chunk
        attached = {name: paths[name].attached() for name in opts.paths}
        for path in paths.values():
            path.close()
        if "cli" in paths:
            runs.add("cli import peak RSS MB", max(paths["cli"].cli_rss_mb))
        # Cold: a new server and connection pool; the OS page cache dropped if we may.
        name = opts.paths[0] if opts.paths else "raw"
        found_db = dbs[name]
        found_db.dispose()
        dropped = drop_os_caches()
        served = name in ("cli", "raw")  # `metaprod serve` in its own process
        cold = CliPath(found_db, workdir, fields=False) if served else ClientPath(found_db, fields=False)
        cache = "dropped" if dropped else "NOT dropped (not root)"
        print(
            f"cold find ({name} database): new server and connections; OS page cache {cache}"
            + ("; MariaDB's buffer pool not emptied (a shared server)" if not found_db.is_sqlite else "")
        )
        timed_find(cold.client, found_db, runs)
        timed_lookups(cold.client, found_db, runs)
        if isinstance(cold, CliPath):
            print(f"after the finds and lookups: {cold.memory().split(',')[0]}")
        cold.close()
    n = opts.files
    raw_rate = n / took["raw"]
    print(f"raw path:    {n} files in {took['raw']:.1f} s = {raw_rate:,.0f} files/s ({4 * raw_rate:,.0f} values/s)")
    runs.add("raw files/s", raw_rate)
    for name in opts.paths:
        rate = n / took[name]
        print(f"{name} path: {n} files in {took[name]:.1f} s = {rate:,.0f} files/s ({4 * rate:,.0f} values/s)")
        print(f"  with {opts.active} Active transformations: {attached[name]:,} attachments made while registering")
        print(f"ratio {name}/raw: {rate / raw_rate:.2f} (target >= 0.5)")
        runs.add(f"{name} files/s", rate)
        runs.add(f"ratio {name}/raw", rate / raw_rate, "{:.2f}")


if __name__ == "__main__":
    sys.exit(main())
