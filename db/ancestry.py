"""Data cycles (docs/spec.md, validation): a transformation never takes a file that
descends, through provenance and in any production, from one of its own outputs.

Each produced file keeps the set of transformations in its ancestry (`file_ancestry`): its
producer's transformation and the union of its inputs' ancestries, computed once when it is
registered (imported files have none). All the outputs of one task share that set, so routing a
batch of them excludes one set of transformation ids (`FileRouter.route_split`), and the SQL
backfill excludes the pairs present in the table: no walk of the provenance per file.

A matching file a transformation skips for this reason is recorded in `skipped_files`, which
`transformation files` and `production progress` count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from metaprod.db.models import FileAncestry, SkippedFile, Task, TaskInput
from metaprod.db.querysql import executemany
from sqlalchemy import Table, func, select, union
from sqlalchemy.orm import Session

ANCESTRY: Table = FileAncestry.__table__  # type: ignore[assignment]
SKIPPED: Table = SkippedFile.__table__  # type: ignore[assignment]


def task_ancestry(*, session: Session, task_id: int) -> frozenset[int]:
    """The ancestry of the outputs of a task: its transformation and its inputs' ancestries (one query)."""
    own = select(Task.transformation_id.label("tid")).where(Task.id == task_id)
    upstream = (
        select(ANCESTRY.c.transformation_id.label("tid"))
        .join(TaskInput, TaskInput.file_id == ANCESTRY.c.file_id)
        .where(TaskInput.task_id == task_id)
    )
    return frozenset(session.scalars(union(own, upstream)))


def record_ancestry(*, session: Session, file_ids: Sequence[int], ancestry: Iterable[int]) -> int:
    """Store `ancestry` as the ancestry of every one of `file_ids` (new files): one INSERT."""
    tids = sorted(set(ancestry))
    rows = [(fid, tid) for fid in file_ids for tid in tids]
    return executemany(session, ANCESTRY, ("file_id", "transformation_id"), rows, ignore=True)


def ancestry_of(*, session: Session, file_id: int) -> frozenset[int]:
    """The stored ancestry of one file."""
    return frozenset(session.scalars(select(ANCESTRY.c.transformation_id).where(ANCESTRY.c.file_id == file_id)))


def record_skipped(*, session: Session, pairs: Sequence[tuple[int, int]]) -> int:
    """Record `(transformation id, file id)` pairs skipped as descendants of the transformation's
    outputs (pairs already recorded are left as they are)."""
    return executemany(session, SKIPPED, ("transformation_id", "file_id"), pairs, ignore=True)


def skipped_counts(*, session: Session, transformation_ids: Sequence[int]) -> dict[int, int]:
    """{transformation id: files skipped} for the given transformations (absent: none)."""
    if not transformation_ids:
        return {}
    rows = session.execute(
        select(SKIPPED.c.transformation_id, func.count())
        .where(SKIPPED.c.transformation_id.in_(list(transformation_ids)))
        .group_by(SKIPPED.c.transformation_id)
    )
    return {int(tid): int(n) for tid, n in rows}


def record_outputs(*, session: Session, task_id: int | None, file_ids: Sequence[int]) -> frozenset[int]:
    """Store the ancestry of new files made by task `task_id` (None: imported, no ancestry)
    and return it, for routing them."""
    if task_id is None:
        return frozenset()
    lineage = task_ancestry(session=session, task_id=task_id)
    record_ancestry(session=session, file_ids=file_ids, ancestry=lineage)
    return lineage
