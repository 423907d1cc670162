"""Transformation use cases: look-ups, status moves, files and tasks by status, resets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metaprod.core import joblog
from metaprod.core.auth import Principal, ensure_can_read, ensure_owns
from metaprod.core.errors import InvalidArgument, NotFound
from metaprod.core.statuses import FileStatus, TaskStatus, TransformationStatus, check_transformation_move
from metaprod.db import counters, events
from metaprod.db.ancestry import skipped_counts
from metaprod.db.models import (
    CatalogFile,
    JobAttempt,
    Production,
    SkippedFile,
    Task,
    TaskInput,
    Transformation,
    TransformationFile,
)
from metaprod.db.productions import kill_tasks
from sqlalchemy import func, select
from sqlalchemy.orm import Session

MAX_LIST = 100_000
# The status `transformation files` lists skipped files with (data cycles): not a FileStatus,
# they are never attached.
SKIPPED = "Skipped"
LOG_TAIL_BYTES = 1024 * 1024
# How much of a job's log is read to find one attempt's part.
LOG_READ_BYTES = 64 * 1024 * 1024


def get_transformation(*, session: Session, production: str, name: str) -> Transformation:
    row = session.scalar(
        select(Transformation)
        .join(Production, Production.id == Transformation.production_id)
        .where(Production.name == production, Transformation.name == name)
    )
    if row is None:
        raise NotFound(f"no transformation {name!r} in production {production!r}")
    return row


def production_of(*, session: Session, transformation: Transformation) -> Production:
    return session.get_one(Production, transformation.production_id)


def list_transformations(*, session: Session, production: str = "", status: str = "") -> list[Transformation]:
    stmt = select(Transformation).join(Production, Production.id == Transformation.production_id)
    if production:
        if session.scalar(select(Production.id).where(Production.name == production)) is None:
            raise NotFound(f"no production named {production!r}")
        stmt = stmt.where(Production.name == production)
    if status:
        _check_status(status, TransformationStatus)
        stmt = stmt.where(Transformation.status == status)
    return list(session.scalars(stmt.order_by(Transformation.id)))


def set_transformation_status(
    *, session: Session, production: str, name: str, status: str, principal: Principal, kill: bool = False
) -> Transformation:
    t = get_transformation(session=session, production=production, name=name)
    owner = production_of(session=session, transformation=t).owner
    ensure_owns(principal, owner, f"production {production!r}")
    previous = t.status
    target = check_transformation_move(t.status, status)
    t.status = target.value
    killed = 0
    if kill or target == TransformationStatus.CLEANING:
        killed = kill_tasks(session=session, transformation_ids=[t.id])
    if target != previous:
        events.record(
            session=session,
            actor=events.actor_of(principal),
            production_id=t.production_id,
            event={"Active": "started", "Stopped": "stopped"}.get(target.value, target.value.lower()),
            transformation=t.name,
            detail=f"from {previous}" + (f"; {killed} tasks killed" if killed else ""),
        )
    session.flush()
    return t


def status_counts(*, session: Session, transformation: Transformation) -> tuple[dict[str, int], dict[str, int]]:
    """Its files and tasks by status, from the status counters (db.counters)."""
    counted = counters.counts(session, [transformation.id]).get(transformation.id, {})
    return dict(counted.get(counters.FILE, {})), dict(counted.get(counters.TASK, {}))


@dataclass(frozen=True)
class FileRow:
    lfn: str
    status: str
    task_id: int | None
    error_count: int


def list_files(
    *, session: Session, production: str, name: str, status: str = "", limit: int = 0, principal: Principal
) -> list[FileRow]:
    """Its files by status, then those it skipped (status `Skipped`, see db.ancestry)."""
    ensure_can_read(principal)
    t = get_transformation(session=session, production=production, name=name)
    rows: list[FileRow] = []
    if status != SKIPPED:
        stmt = (
            select(CatalogFile.lfn, TransformationFile.status, _latest_task(), TransformationFile.error_count)
            .join(CatalogFile, CatalogFile.id == TransformationFile.file_id)
            .where(TransformationFile.transformation_id == t.id)
            .order_by(TransformationFile.file_id)
            .limit(_limit(limit))
        )
        if status:
            _check_status(status, FileStatus)
            stmt = stmt.where(TransformationFile.status == status)
        rows = [FileRow(*row) for row in session.execute(stmt)]
    room = _limit(limit) - len(rows)
    if status in ("", SKIPPED) and room > 0:
        skipped = (
            select(CatalogFile.lfn)
            .join(SkippedFile, SkippedFile.file_id == CatalogFile.id)
            .where(SkippedFile.transformation_id == t.id)
            .order_by(SkippedFile.file_id)
            .limit(room)
        )
        rows.extend(FileRow(lfn, SKIPPED, None, 0) for lfn in session.scalars(skipped))
    return rows


def skipped_count(*, session: Session, transformation: Transformation) -> int:
    """How many files it skipped: they match its input but descend from its outputs."""
    return skipped_counts(session=session, transformation_ids=[transformation.id]).get(transformation.id, 0)


@dataclass(frozen=True)
class TaskRow:
    task: Task
    inputs: list[str]


def list_tasks(
    *, session: Session, production: str, name: str, status: str = "", limit: int = 0, principal: Principal
) -> list[TaskRow]:
    ensure_can_read(principal)
    t = get_transformation(session=session, production=production, name=name)
    stmt = select(Task).where(Task.transformation_id == t.id).order_by(Task.task_index).limit(_limit(limit))
    if status:
        _check_status(status, TaskStatus)
        stmt = stmt.where(Task.status == status)
    tasks = list(session.scalars(stmt))
    inputs = task_input_lfns(session=session, task_ids=[task.id for task in tasks])
    return [TaskRow(task, inputs.get(task.id, [])) for task in tasks]


def task_input_lfns(*, session: Session, task_ids: list[int]) -> dict[int, list[str]]:
    """Input LFNs of many tasks in task order, with one query."""
    result: dict[int, list[str]] = {}
    if not task_ids:
        return result
    rows = session.execute(
        select(TaskInput.task_id, CatalogFile.lfn)
        .join(CatalogFile, CatalogFile.id == TaskInput.file_id)
        .where(TaskInput.task_id.in_(task_ids))
        .order_by(TaskInput.task_id, TaskInput.position)
    )
    for task_id, lfn in rows:
        result.setdefault(task_id, []).append(lfn)
    return result


def task_log(*, session: Session, task_id: int, attempt: int, principal: Principal) -> tuple[int, str]:
    ensure_can_read(principal)
    stmt = select(JobAttempt).where(JobAttempt.task_id == task_id)
    stmt = stmt.where(JobAttempt.attempt == attempt) if attempt else stmt.order_by(JobAttempt.attempt.desc())
    row = session.scalars(stmt.limit(1)).first()
    if row is None:
        if session.scalar(select(Task.id).where(Task.id == task_id)) is None:
            raise NotFound(f"task {task_id} does not exist")
        raise NotFound(f"task {task_id} has no attempt {attempt}" if attempt else f"task {task_id} has no attempt yet")
    text = ""
    if row.log_path and Path(row.log_path).exists():
        # A job's log may hold several attempts (a bundle): this one's part, then its tail.
        with open(row.log_path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - LOG_READ_BYTES))
            text = joblog.attempt_part(fh.read().decode(errors="replace"), task_id, row.attempt)[-LOG_TAIL_BYTES:]
    if row.error:
        text += f"\n[metaprod] attempt {row.attempt}: {row.error}\n"
    return row.attempt, text


def _latest_task() -> Any:
    """The last task of the file's transformation that took the file (None: never grouped)."""
    return (
        select(func.max(TaskInput.task_id))
        .join(Task, Task.id == TaskInput.task_id)
        .where(
            TaskInput.file_id == TransformationFile.file_id,
            Task.transformation_id == TransformationFile.transformation_id,
        )
        .scalar_subquery()
    )


def _limit(limit: int) -> int:
    return MAX_LIST if limit <= 0 else min(limit, MAX_LIST)


def _check_status(status: str, enum: Any) -> None:
    try:
        enum(status)
    except ValueError:
        choices = ", ".join(s.value for s in enum)
        raise InvalidArgument(f"unknown status {status!r}: use one of {choices}") from None
