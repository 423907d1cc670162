"""Raw baselines of grouping (bench_pipeline part c): the least SQL that turns Unused files
into tasks of `group_size`, written straight through the driver, with no Python in between
but what forms the rows, so that `db.tasks.create_tasks` has a floor measured in the same run
on the same database.

- per_file: what today's schema asks of any implementation, one window of WINDOW files per
  transaction: read the Unused ids (the status index), insert the tasks, insert a
  `task_inputs` row per file, mark each file Assigned (by primary key).
- per_task: a schema that would write no row per file: the same tasks, and one row per task
  holding its file ids packed in a blob (a scratch table made here), the files' status left
  to be derived from their task. The floor of that design, for comparison.
"""

from __future__ import annotations

import time
from array import array
from typing import Any

WINDOW = 10_000  # files per transaction, as db.tasks.MAX_FILES_PER_CYCLE
PACKED_TABLE = "bench_packed_inputs"


def _first_task_id(cur: Any) -> int:
    cur.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM tasks")
    return int(cur.fetchone()[0])


def _task_rows(tid: int, first_id: int, first_index: int, count: int, stamp: Any) -> list[tuple[Any, ...]]:
    return [(first_id + i, tid, first_index + i, "Created", 0, 0, "local", stamp, stamp) for i in range(count)]


INSERT_TASKS = (
    "INSERT INTO tasks (id, transformation_id, task_index, status, attempt, attempts_base, backend, "
    "created_at, updated_at) VALUES ({0}, {0}, {0}, {0}, {0}, {0}, {0}, {0}, {0})"
)


def per_file(conn: Any, cur: Any, ph: str, stamp: Any, tid: int, group_size: int) -> tuple[int, float]:
    """Group every Unused file of `tid`; (files grouped, seconds)."""
    grouped, task_index, started = 0, 0, time.perf_counter()
    while True:
        cur.execute(
            f"SELECT file_id FROM transformation_files WHERE transformation_id = {ph} AND status = {ph} "
            f"ORDER BY file_id LIMIT {WINDOW}",
            (tid, "Unused"),
        )
        ids = [row[0] for row in cur.fetchall()]
        if not ids:
            break
        first_id = _first_task_id(cur)
        count = -(-len(ids) // group_size)
        cur.executemany(INSERT_TASKS.format(ph), _task_rows(tid, first_id, task_index, count, stamp))
        cur.executemany(
            f"INSERT INTO task_inputs (task_id, position, file_id) VALUES ({ph}, {ph}, {ph})",
            [(first_id + i // group_size, i % group_size, fid) for i, fid in enumerate(ids)],
        )
        cur.execute(
            f"UPDATE transformation_files SET status = {ph}, updated_at = {ph} WHERE transformation_id = {ph} "
            f"AND status = {ph} AND file_id IN ({', '.join([ph] * len(ids))})",
            ("Assigned", stamp, tid, "Unused", *ids),
        )
        conn.commit()
        grouped += len(ids)
        task_index += count
    return grouped, time.perf_counter() - started


def per_task(conn: Any, cur: Any, ph: str, stamp: Any, tid: int, group_size: int, sqlite: bool) -> tuple[int, float]:
    """The per-task design's floor over `tid`'s files (keyset windows: no status is written)."""
    blob = "BLOB" if sqlite else "LONGBLOB"
    cur.execute(f"CREATE TABLE {PACKED_TABLE} (task_id BIGINT PRIMARY KEY, file_ids {blob} NOT NULL)")
    conn.commit()
    grouped, task_index, last, started = 0, 0, 0, time.perf_counter()
    while True:
        cur.execute(
            f"SELECT file_id FROM transformation_files WHERE transformation_id = {ph} AND status = {ph} "
            f"AND file_id > {ph} ORDER BY file_id LIMIT {WINDOW}",
            (tid, "Unused", last),
        )
        ids = [row[0] for row in cur.fetchall()]
        if not ids:
            break
        first_id = _first_task_id(cur)
        count = -(-len(ids) // group_size)
        cur.executemany(INSERT_TASKS.format(ph), _task_rows(tid, first_id, task_index, count, stamp))
        cur.executemany(
            f"INSERT INTO {PACKED_TABLE} (task_id, file_ids) VALUES ({ph}, {ph})",
            [(first_id + n, array("q", ids[n * group_size : (n + 1) * group_size]).tobytes()) for n in range(count)],
        )
        conn.commit()
        grouped += len(ids)
        task_index += count
        last = ids[-1]
    elapsed = time.perf_counter() - started
    cur.execute(f"DROP TABLE {PACKED_TABLE}")
    conn.commit()
    return grouped, elapsed
