"""Benchmark: reuse by content, per task.

    .venv/bin/python bench/bench_reuse.py [--tasks 5000] [--db sqlite|mysql://root@127.0.0.1:3306]

On a fresh database, N catalogued input files (with checksums) feed three productions whose
transformation is the same: `a` (its tasks then marked Done, each with one output in the
catalog), `b` (reuse on) and `c` (`reuse: false`). Times, per task:

1. signatures: `db.tasks.create_tasks` of `b` (grouping, signatures, inserts) against the same
   for `c` minus nothing (both compute them: the difference is the hashing, printed apart);
2. reuse: `db.jobs.claim_tasks` cycles over `b`'s tasks, each of which finds `a`'s Done twin
   (one look-up per batch) and registers its outputs instead of running;
3. the baseline: `claim_tasks` cycles over `c`'s tasks (a normal claim: attempts and tokens).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from metaprod.core.auth import SYSTEM
from metaprod.core.reuse import task_signature
from metaprod.db import catalog, jobs, productions, reuse, tasks
from metaprod.db.bulk import update_rows
from metaprod.db.models import CatalogFile, Task, Transformation
from metaprod.db.session import Database
from sqlalchemy import select, update

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import fresh_database


def spec(name: str, reuse_on: bool) -> dict[str, object]:
    return {
        "production": name,
        "fields": {"datatype": "str", "n": "int"},
        "transformations": [
            {
                "name": "t",
                "input_query": {"datatype": "raw"},
                "command": "cat $METAPROD_INPUTS > x.out",
                "outputs": [{"glob": "*.out", "metadata": {"datatype": "out"}}],
                "reuse": reuse_on,
            }
        ],
    }


def transformation_id(database: Database, production: str) -> int:
    with database.session_scope() as session:
        return int(
            session.scalars(
                select(Transformation.id)
                .where(Transformation.spec["name"].as_string() == "t")
                .order_by(Transformation.id)
            ).all()[["a", "b", "c"].index(production)]
        )


def claim_all(database: Database, batch: int) -> tuple[float, int, int]:
    """Claim cycles until nothing is due: (seconds, tasks reused, attempts claimed)."""
    reused: list[int] = []
    claimed = 0
    start = time.perf_counter()
    while True:
        before = len(reused)
        with database.session_scope() as session:
            got = jobs.claim_tasks(session=session, limit=batch, max_queued_per_backend={}, reused=reused)
        claimed += len(got)
        if not got and len(reused) == before:
            break
    return time.perf_counter() - start, len(reused), claimed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--db", default="sqlite")
    args = parser.parse_args()
    n = args.tasks
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.db, Path(tmp)) as database:
        with database.session_scope() as session:
            for name, on in (("a", True), ("b", True), ("c", False)):
                productions.create_production(session=session, spec=spec(name, on), principal=SYSTEM)
            session.execute(update(Transformation).values(status="Active"))  # files route at registration
            catalog.register_files(
                session=session,
                files=[
                    catalog.FileInput(
                        f"/raw/{i}", f"/data/raw/{i}", 10, f"adler32:{i:08x}", {"datatype": "raw", "n": i}
                    )
                    for i in range(n)
                ],
            )
        ids = {name: transformation_id(database, name) for name in "abc"}
        created: dict[str, float] = {}
        for name in "abc":
            start = time.perf_counter()
            while True:
                with database.session_scope() as session:
                    made = tasks.create_tasks(session=session, transformation_id=ids[name], flush=True)
                if not made or not made.tasks:
                    break
            created[name] = time.perf_counter() - start
        with database.session_scope() as session:
            t = session.get_one(Transformation, ids["a"])
            made = reuse.transformation_recipe(t)
        start = time.perf_counter()
        for i in range(n):
            task_signature(made, [f"adler32:{i:08x}"])
        hashing = time.perf_counter() - start
        # a's tasks Done, each with its output in the catalog.
        with database.session_scope() as session:
            a_tasks = dict(
                session.execute(select(Task.task_index, Task.id).where(Task.transformation_id == ids["a"])).all()  # type: ignore[arg-type]
            )
            catalog.register_files(
                session=session,
                files=[
                    catalog.FileInput(
                        f"/a/t/{i:06d}/x.out", f"/data/a/{i}", 10, f"adler32:{i:08x}", {"datatype": "out"}
                    )
                    for i in range(n)
                ],
            )
            by_lfn = dict(
                session.execute(select(CatalogFile.lfn, CatalogFile.id).where(CatalogFile.lfn.like("/a/%"))).all()
            )  # type: ignore[arg-type]
            update_rows(
                session,
                CatalogFile.__table__,  # type: ignore[arg-type]
                list(by_lfn.values()),
                own={"producer_task_id": {by_lfn[f"/a/t/{i:06d}/x.out"]: a_tasks[i] for i in range(n)}},
            )
            session.execute(update(Task).where(Task.transformation_id == ids["a"]).values(status="Done"))
        with database.session_scope() as session:  # b alone first
            session.execute(update(Transformation).where(Transformation.id == ids["c"]).values(status="Stopped"))
        reuse_seconds, reused, claimed_b = claim_all(database, args.batch)
        # c: the plain claim (reuse off), in another pass so b is not in the way.
        with database.session_scope() as session:
            session.execute(update(Transformation).where(Transformation.id != ids["c"]).values(status="Stopped"))
            session.execute(update(Transformation).where(Transformation.id == ids["c"]).values(status="Active"))
        plain_seconds, _, claimed_c = claim_all(database, args.batch)
        # The look-up alone: one query per batch of signatures.
        with database.session_scope(readonly=True) as session:
            sigs = list(session.scalars(select(Task.signature).where(Task.transformation_id == ids["b"])))
            start = time.perf_counter()
            for s in range(0, len(sigs), args.batch):
                session.execute(
                    select(Task.signature, Task.id).where(
                        Task.signature.in_(sigs[s : s + args.batch]), Task.status == "Done"
                    )
                ).all()
            lookup = time.perf_counter() - start
    print(f"reuse by content, {n} tasks per production, batches of {args.batch}, on {args.db}:")
    print(f"  task creation (grouping + signatures + inserts): {created['b'] / n * 1e6:.1f} us/task")
    print(f"    of which signature hashing: {hashing / n * 1e6:.2f} us/task")
    print(
        f"  reuse (look-up + outputs registered + Done): {reuse_seconds / n * 1e6:.1f} us/task "
        f"({reused} reused, {claimed_b} claimed)"
    )
    print(f"    of which the look-up query: {lookup / n * 1e6:.2f} us/task")
    print(f"  baseline, a normal claim (reuse: false): {plain_seconds / n * 1e6:.1f} us/task ({claimed_c} claimed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
