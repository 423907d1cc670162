"""Task creation: root task counts and grouping of Unused files (set-based, one statement
per batch), under a per-transformation claim so two agents never group the same files."""

from __future__ import annotations

from dataclasses import dataclass

from metaprod.core.grouping import Candidate, GroupingParams, group_files, group_ids, needs_metadata
from metaprod.core.statuses import TRANSFORMATION_OUTCOMES, FileStatus, TaskStatus, TransformationStatus
from metaprod.db import counters, reuse
from metaprod.db.locking import claim
from metaprod.db.models import (
    CatalogFile,
    FileMetadataValue,
    MetadataField,
    StatusCounter,
    Task,
    TaskInput,
    Transformation,
    TransformationFile,
    TransformationLink,
    utcnow,
)
from metaprod.db.querysql import bind_value, executemany
from sqlalchemy import func, select
from sqlalchemy.orm import Session

# Files considered per transformation and cycle: bounds one transaction's size and one
# cycle's time, which grows with it (MariaDB, 2 loaded cores: 1.3-3.5 s at 50,000, 0.3-0.7 s
# at 10,000; at 250,000 other agents waited seconds on the transformation's lock). A
# transformation with more says so (TaskCreation.more) and the next cycle follows at once:
# the throughput stays that of the statements (10,000 vs 50,000: the same within noise),
# the few per-cycle queries cost milliseconds.
MAX_FILES_PER_CYCLE = 10_000
# Tasks of a root (`tasks: N`) created per transformation and cycle: a root of millions of
# tasks is created batch by batch (memory stays flat; other transformations are served in
# every cycle), its declared count still the total that progress shows. (10,000 a cycle took
# 0.75 s on average and up to 2.3 s on a loaded MariaDB; the rate is that of the statements
# either way, since a root still short loops at once.)
ROOT_TASKS_PER_CYCLE = 5_000
# Created (not yet submitted) tasks a root may have waiting: creation keeps this far ahead of
# execution and no further. A root of ten million tasks then never has millions of rows
# waiting, which a `production stop --kill` would have to mark Killed in one transaction
# (over a minute on MariaDB at a million). The task agent's poll (5 s by default) tops the
# backlog up: far less than the backlog lasts at any rate the backends reach.
ROOT_BACKLOG = 50_000


@dataclass(frozen=True)
class TaskCreation:
    transformation_id: int
    tasks: int
    files: int
    more: bool = False  # a root still short of tasks, or more Unused files than one cycle takes


def transformations_needing_tasks(*, session: Session) -> list[int]:
    """Active transformations that have Unused files, or roots still short of tasks."""
    active = TransformationStatus.ACTIVE.value
    with_files = select(TransformationFile.transformation_id).where(
        TransformationFile.status == FileStatus.UNUSED.value
    )
    children = select(Transformation.id).where(Transformation.status == active, Transformation.id.in_(with_files))
    # The next task index of each root, as create_tasks reads it: one probe of the unique
    # (transformation_id, task_index) index per root. (A count of every transformation's
    # tasks was a scan of the whole table in every cycle: seconds at ten million tasks.)
    next_index = (
        select(func.coalesce(func.max(Task.task_index) + 1, 0))
        .where(Task.transformation_id == Transformation.id)
        .correlate(Transformation)
        .scalar_subquery()
    )
    # A root whose backlog of Created tasks is full waits (its counter row, one probe): no
    # claim of its row in every cycle, which the submit agent may hold.
    waiting = (
        select(func.coalesce(func.sum(StatusCounter.n), 0))
        .where(
            StatusCounter.transformation_id == Transformation.id,
            StatusCounter.what == counters.TASK,
            StatusCounter.status == TaskStatus.CREATED.value,
        )
        .correlate(Transformation)
        .scalar_subquery()
    )
    roots = select(Transformation.id).where(
        Transformation.status == active,
        Transformation.input_query.is_(None),
        Transformation.task_count.is_not(None),
        next_index < Transformation.task_count,
        waiting < ROOT_BACKLOG,
    )
    return sorted(set(session.scalars(children)) | set(session.scalars(roots)))


def input_ended(*, session: Session, transformation: Transformation) -> bool:
    """No more input can come: every parent has ended, or (a catalog-fed root) the input is
    closed. Only then are partial groups flushed, unless a person flushes them earlier."""
    parent = (
        select(Transformation.status)
        .join(TransformationLink, TransformationLink.parent_id == Transformation.id)
        .where(TransformationLink.child_id == transformation.id)
    )
    statuses = list(session.scalars(parent))
    if not statuses:
        return transformation.input_closed
    return all(status in TRANSFORMATION_OUTCOMES for status in statuses)


def create_tasks(*, session: Session, transformation_id: int, flush: bool = False) -> TaskCreation | None:
    """Create the tasks one transformation is due; None when another agent holds it. With
    `flush`, partial groups become tasks now (`transformation flush`)."""
    t = session.scalars(claim(session, select(Transformation).where(Transformation.id == transformation_id))).first()
    if t is None or t.status != TransformationStatus.ACTIVE.value:
        return None
    next_index = (
        session.scalar(select(func.coalesce(func.max(Task.task_index) + 1, 0)).where(Task.transformation_id == t.id))
        or 0
    )
    if t.input_query is None:
        short = (t.task_count or 0) - next_index
        waiting = counters.counts(session, [t.id]).get(t.id, {}).get(counters.TASK, {}).get(TaskStatus.CREATED.value, 0)
        wanted = min(short, ROOT_TASKS_PER_CYCLE, ROOT_BACKLOG - waiting)
        if wanted <= 0:
            return TaskCreation(t.id, 0, 0)
        _insert_tasks(session, t, next_index, wanted, reuse.root_signatures(t, next_index, wanted))
        return TaskCreation(t.id, wanted, 0, more=wanted < short and waiting + wanted < ROOT_BACKLOG)
    flush = flush or input_ended(session=session, transformation=t)
    if t.plugin == "standard":
        unused = _unused_ids(session, t)
        seen = len(unused)
        groups = group_ids(unused, t.group_size, flush)
    else:
        params = GroupingParams(
            group_size=t.group_size,
            group_by=tuple(t.group_by or ()),
            max_bytes=t.max_bytes,
        )
        candidates = _unused_candidates(session, t)
        seen = len(candidates)
        groups = group_files(t.plugin, candidates, params, flush)
    if not groups:
        return TaskCreation(t.id, 0, 0)
    _insert_tasks(session, t, next_index, len(groups), reuse.signatures(session, t, groups))
    task_ids = list(
        session.scalars(
            select(Task.id)
            .where(Task.transformation_id == t.id, Task.task_index >= next_index)
            .order_by(Task.task_index)
        )
    )
    inputs = [
        (task_id, pos, file_id)
        for task_id, group in zip(task_ids, groups, strict=True)
        for pos, file_id in enumerate(group)
    ]
    # Driver-level executemany: at a million files, SQLAlchemy's per-row parameter
    # processing would cost more than the database work.
    executemany(session, TaskInput.__table__, ("task_id", "position", "file_id"), inputs)  # type: ignore[arg-type]
    assigned = _mark_assigned(session, t.id, sorted(file_id for group in groups for file_id in group))
    counters.record_move(session, counters.FILE, t.id, FileStatus.UNUSED.value, FileStatus.ASSIGNED.value, assigned)
    session.flush()
    # A full window that made tasks: more files may wait behind it (never true of a cycle
    # that made nothing, so a window of files that cannot be grouped yet never spins).
    return TaskCreation(t.id, len(groups), len(inputs), more=seen >= MAX_FILES_PER_CYCLE)


# Grouped files marked Assigned per UPDATE: few round trips, within SQLite's bound variables.
ASSIGN_CHUNK = 10_000


def _mark_assigned(session: Session, transformation_id: int, file_ids: list[int]) -> int:
    """Mark these files (sorted) of the transformation Assigned, each only while still Unused:
    one UPDATE per ASSIGN_CHUNK ids, by primary key, with the ids written in the statement
    through the driver. (A subquery over the new tasks' inputs made the database build and
    probe a temporary set; a bare id range could take a file attached meanwhile.)"""
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    now = bind_value(session, TransformationFile.__table__.c.updated_at, utcnow())
    head = (
        f"UPDATE transformation_files SET status = {mark}, updated_at = {mark} "
        f"WHERE transformation_id = {mark} AND status = {mark} AND file_id IN "
    )
    marked = 0
    for start in range(0, len(file_ids), ASSIGN_CHUNK):
        chunk = file_ids[start : start + ASSIGN_CHUNK]
        marked += connection.exec_driver_sql(
            head + f"({', '.join([mark] * len(chunk))})",
            (FileStatus.ASSIGNED.value, now, transformation_id, FileStatus.UNUSED.value, *chunk),
        ).rowcount
    return marked


def _insert_tasks(
    session: Session, t: Transformation, first_index: int, count: int, signatures: list[str | None]
) -> None:
    now = bind_value(session, Task.__table__.c.created_at, utcnow())
    rows = [
        (t.id, first_index + i, TaskStatus.CREATED.value, 0, t.backend, signatures[i], now, now) for i in range(count)
    ]
    columns = (
        "transformation_id",
        "task_index",
        "status",
        "attempt",
        "backend",
        "signature",
        "created_at",
        "updated_at",
    )
    executemany(session, Task.__table__, columns, rows)  # type: ignore[arg-type]
    counters.record(session, counters.TASK, t.id, TaskStatus.CREATED.value, count)


def _unused_ids(session: Session, t: Transformation) -> list[int]:
    """Unused file ids in catalog order: an index-only scan of (transformation_id, status,
    file_id), read through the driver (a million ORM rows would cost more than the scan)."""
    mark = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    cursor = session.connection().exec_driver_sql(
        f"SELECT file_id FROM transformation_files WHERE transformation_id = {mark} AND status = {mark} "
        f"ORDER BY file_id LIMIT {mark}",
        (t.id, FileStatus.UNUSED.value, MAX_FILES_PER_CYCLE),
    )
    return [row[0] for row in cursor.fetchall()]


def _unused_candidates(session: Session, t: Transformation) -> list[Candidate]:
    rows = session.execute(
        select(TransformationFile.file_id, CatalogFile.size)
        .join(CatalogFile, CatalogFile.id == TransformationFile.file_id)
        .where(TransformationFile.transformation_id == t.id, TransformationFile.status == FileStatus.UNUSED.value)
        .order_by(TransformationFile.file_id)
        .limit(MAX_FILES_PER_CYCLE)
    ).all()
    metadata: dict[int, dict[str, object]] = {}
    if needs_metadata(t.plugin) and rows:
        keys = list(t.group_by or ())
        ids = [r[0] for r in rows]
        md_rows = session.execute(
            select(
                FileMetadataValue.file_id,
                MetadataField.name,
                FileMetadataValue.value_int,
                FileMetadataValue.value_float,
                FileMetadataValue.value_str,
            )
            .join(MetadataField, MetadataField.id == FileMetadataValue.field_id)
            .where(MetadataField.name.in_(keys), FileMetadataValue.file_id.between(ids[0], ids[-1]))
        )
        for file_id, name, vi, vf, vs in md_rows:
            metadata.setdefault(file_id, {})[name] = vi if vi is not None else vf if vf is not None else vs
    return [Candidate(file_id=fid, size=size, metadata=metadata.get(fid, {})) for fid, size in rows]
