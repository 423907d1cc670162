"""Agent cycles with a million files in one transformation.

    python bench/bench_agent_cycles.py [--files 1000000] [--db sqlite|mysql://root@127.0.0.1:3306]
                                       [--rounds 8] [--runs 1]

On a fresh database: N files (one metadata key) inserted with DB-API executemany (setup,
untimed; its rate is printed as the raw baseline of the run), then one production with one
catalog-fed transformation taking all of them (group_size 10) is started. Then --rounds
rounds, each calling every agent's `run_once` once (input, tasks, submit, monitor, finalize,
production, sampler: the cycles `metaprod agents` runs), each in its own session and
transaction as the runner does, timed. The input agent attaches the files (backfill), the
task agent groups them, the submit agent hands tasks to the local backend, whose jobs
(`true`, no sandbox) run meanwhile. Prints every cycle's time and, per agent, the slowest
cycle (target < 1 s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench_pipeline import database_url
from metaprod.agents.jobs import BackendPool
from metaprod.agents.launcher import build_agents
from metaprod.agents.settings import AgentSettings
from metaprod.core.auth import Principal, Role
from metaprod.core.statuses import ProductionStatus
from metaprod.db.migrate import upgrade
from metaprod.db.productions import create_production, set_production_status
from metaprod.db.session import Database
from rawrows import raw_cursor
from runs import Runs
from sqlalchemy import text


def insert_files(db: Database, n: int) -> float:
    """N files with metadata bench=c through the driver; returns files/s (the raw baseline)."""
    conn, cur, ph, stamp = raw_cursor(db)
    cur.execute(f"INSERT INTO metadata_fields (id, name, type, created_at) VALUES (1, 'bench', 'str', {ph})", (stamp,))
    start = time.monotonic()
    batch = 50_000
    for first in range(1, n + 1, batch):
        ids = range(first, min(n + 1, first + batch))
        cur.executemany(
            f"INSERT INTO files (id, lfn, pfn, size, checksum, created_at) VALUES ({', '.join([ph] * 6)})",
            [(i, f"/bench/c/{i:09d}", "", 1000, f"{i:08x}", stamp) for i in ids],
        )
        cur.executemany(
            f"INSERT INTO file_metadata (file_id, field_id, value_str) VALUES ({ph}, 1, 'c')", [(i,) for i in ids]
        )
        conn.commit()
    rate = n / (time.monotonic() - start)
    conn.close()
    return rate


def bench(db_url: str, n: int, rounds: int, workdir: Path, runs: Runs) -> None:
    db = Database(db_url)
    upgrade(db)
    try:
        raw = insert_files(db, n)
        print(f"setup: {n} files inserted raw at {raw:,.0f} files/s (untimed)")
        admin = Principal("bench", Role.ADMIN, "bench")
        spec = {
            "production": "cycles",
            "fields": {"bench": "str"},
            "transformations": [{"name": "t", "input_query": {"bench": "c"}, "group_size": 10, "command": "true"}],
        }
        with db.session_scope() as session:
            create_production(session=session, spec=spec, principal=admin)
            set_production_status(session=session, name="cycles", target=ProductionStatus.ACTIVE, principal=admin)
        data_dir = workdir / "data"
        data_dir.mkdir(exist_ok=True)
        settings = AgentSettings(data_dir=data_dir, sandbox="none")
        backends = BackendPool({"local": {"max_workers": 2}})
        agents = build_agents(settings, backends)
        slowest: dict[str, float] = {}
        try:
            for r in range(rounds):
                line = []
                for agent in agents:
                    start = time.perf_counter()
                    with db.session_scope() as session:
                        status = agent.run_once(session)
                    took = time.perf_counter() - start
                    slowest[agent.name] = max(slowest.get(agent.name, 0.0), took)
                    line.append(f"{agent.name} {took:.3f} s ({status[:40]})")
                print(f"round {r + 1}: " + "; ".join(line), flush=True)
        finally:
            backends.close()
        with db.session_scope(readonly=True) as session:
            counts = session.execute(text("SELECT status, COUNT(*) FROM transformation_files GROUP BY status")).all()
        print("files by status at the end:", dict((s, int(c)) for s, c in counts))
        for name, took in slowest.items():
            flag = "" if took < 1.0 else "  <-- over 1 s"
            print(f"  {name:<10} slowest cycle {took:.3f} s{flag}")
            runs.add(f"{name} max cycle s", took, "{:.3f}")
        runs.add("raw insert files/s", raw)
    finally:
        db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--rounds", type=int, default=8, help="rounds of one cycle of every agent")
    parser.add_argument("--runs", type=int, default=1, help="repeat on fresh databases; min/median/max")
    args = parser.parse_args()
    runs = Runs()
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="metaprod-cycles-") as tmp, database_url(args.db, Path(tmp)) as url:
            bench(url, args.files, args.rounds, Path(tmp), runs)
    print(f"summary over {args.runs} run(s), {args.files} files, {args.db}:")
    print(runs.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
