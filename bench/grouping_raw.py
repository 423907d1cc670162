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


def _window(cur: Any, ph: str, tid: int, after: int | None) -> list[int]:
    """The next WINDOW Unused file ids of `tid` (above `after`), in id order: the status index."""
    above, args = ("", (tid, "Unused")) if after is None else (f"AND file_id > {ph} ", (tid, "Unused", after))
    cur.execute(
        f"SELECT file_id FROM transformation_files WHERE transformation_id = {ph} AND status = {ph} "
        f"{above}ORDER BY file_id LIMIT {WINDOW}",
        args,
    )
    return [row[0] for row in cur.fetchall()]


def _insert_tasks(cur: Any, ph: str, stamp: Any, tid: int, first_index: int, files: int, group_size: int) -> int:
    """Insert the tasks of `files` files; returns the first task's id (ids chosen here)."""
    cur.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM tasks")
    first_id = int(cur.fetchone()[0])
    rows = [
        (first_id + i, tid, first_index + i, "Created", 0, 0, "local", stamp, stamp)
        for i in range(-(-files // group_size))
    ]
    cur.executemany(
        "INSERT INTO tasks (id, transformation_id, task_index, status, attempt, attempts_base, backend, "
        f"created_at, updated_at) VALUES ({', '.join([ph] * 9)})",
        rows,
    )
    return first_id


def _begin(cur: Any, sqlite: bool) -> None:
    """One transaction per window: the raw SQLite connection is in autocommit (db.session
    issues its own BEGIN), where every row would be a transaction of its own."""
    if sqlite:
        cur.execute("BEGIN IMMEDIATE")


def per_file(conn: Any, cur: Any, ph: str, stamp: Any, tid: int, group_size: int, sqlite: bool) -> tuple[int, float]:
    """Group every Unused file of `tid`; (files grouped, seconds)."""
    grouped, task_index, started = 0, 0, time.perf_counter()
    _begin(cur, sqlite)
    while ids := _window(cur, ph, tid, None):  # the files of a window leave Unused
        first_id = _insert_tasks(cur, ph, stamp, tid, task_index, len(ids), group_size)
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
        _begin(cur, sqlite)
        grouped += len(ids)
        task_index += -(-len(ids) // group_size)
    elapsed = time.perf_counter() - started
    conn.commit()
    return grouped, elapsed


def per_task(conn: Any, cur: Any, ph: str, stamp: Any, tid: int, group_size: int, sqlite: bool) -> tuple[int, float]:
    """The per-task design's floor over `tid`'s files (keyset windows: no status is written)."""
    cur.execute(
        f"CREATE TABLE {PACKED_TABLE} (task_id BIGINT PRIMARY KEY, file_ids {'BLOB' if sqlite else 'LONGBLOB'})"
    )
    conn.commit()
    grouped, task_index, last, started = 0, 0, 0, time.perf_counter()
    _begin(cur, sqlite)
    while ids := _window(cur, ph, tid, last):
        first_id = _insert_tasks(cur, ph, stamp, tid, task_index, len(ids), group_size)
        packed = [array("q", ids[at : at + group_size]).tobytes() for at in range(0, len(ids), group_size)]
        cur.executemany(
            f"INSERT INTO {PACKED_TABLE} (task_id, file_ids) VALUES ({ph}, {ph})",
            [(first_id + n, blob) for n, blob in enumerate(packed)],
        )
        conn.commit()
        _begin(cur, sqlite)
        grouped += len(ids)
        task_index += len(packed)
        last = ids[-1]
    elapsed = time.perf_counter() - started
    conn.commit()
    cur.execute(f"DROP TABLE {PACKED_TABLE}")
    conn.commit()
    return grouped, elapsed
