"""What the dashboard and /metrics read, set-based: every production's counts in a few grouped
queries (services/ caches them for a few seconds), pages of a transformation's files and tasks
by key, a task's attempts, the agents, the stored history samples, and the attempts that
started or finished in a time window (for the histograms)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from metaprod.core.progress import (
    FILE_KEYS,
    TASK_KEYS,
    ProductionProgress,
    TransformationProgress,
    complete_counts,
)
from metaprod.core.rates import Point, work_units
from metaprod.core.statuses import AttemptStatus, ProductionStatus, TaskStatus
from metaprod.db import counters
from metaprod.db.models import (
    AgentHeartbeat,
    CatalogFile,
    JobAttempt,
    MonitorSample,
    Production,
    Task,
    TaskInput,
    Transformation,
    TransformationFile,
    TransformationLink,
)
from metaprod.db.querysql import bind_value, executemany
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

# Attempt statuses that ended (a task "finished" one attempt with this outcome).
FINISHED_ATTEMPTS = (
    AttemptStatus.DONE.value,
    AttemptStatus.FAILED.value,
    AttemptStatus.LOST.value,
    AttemptStatus.KILLED.value,
)


@dataclass(frozen=True)
class ProductionRow:
    id: int
    name: str
    status: str
    owner: str
    description: str
    created_at: datetime
    updated_at: datetime
    progress: ProductionProgress
    transformation_ids: tuple[int, ...]


@dataclass(frozen=True)
class Overview:
    """Every production (Cleaned ones too) with its progress, and the global counts."""

    productions: list[ProductionRow]
    # {transformation id: {attempt outcome: attempts}} (ended attempts only).
    attempt_outcomes: dict[int, dict[str, int]]
    transformation_names: dict[int, tuple[str, str]]  # id -> (production, transformation)
    files_registered: int
    reported_attempts: int
    tasks_by_status: dict[str, int] = field(default_factory=dict)
    files_by_status: dict[str, int] = field(default_factory=dict)


def transformation_progress(
    name: str, status: str, task_count: int | None, is_root: bool, counted: dict[str, dict[str, int]]
) -> TransformationProgress:
    """A transformation's progress from its counters ({what: {status: count}})."""
    return TransformationProgress(
        name=name,
        status=status,
        files=complete_counts(counted.get(counters.FILE, {}), FILE_KEYS),
        tasks=complete_counts(counted.get(counters.TASK, {}), TASK_KEYS),
        task_count=task_count if is_root else None,
    )


# A production's own columns, as a summary row (and the dashboard's page: db.production_page) reads them.
PRODUCTION_COLUMNS = (
    Production.id,
    Production.name,
    Production.status,
    Production.owner,
    Production.description,
    Production.created_at,
    Production.updated_at,
)


def overview(*, session: Session) -> Overview:
    """Four queries whatever the number of productions, tasks and files: the counts are the
    status counters (db.counters), never a scan of tasks, files or attempts."""
    productions = session.execute(select(*PRODUCTION_COLUMNS).order_by(Production.id)).all()
    transformations = session.execute(
        select(
            Transformation.id,
            Transformation.production_id,
            Transformation.name,
            Transformation.status,
            Transformation.task_count,
            Transformation.input_query.is_(None),
        ).order_by(Transformation.id)
    ).all()
    counted = counters.counts(session)
    none: dict[str, dict[str, int]] = {}
    empty: dict[str, int] = {}
    by_production: dict[int, list[TransformationProgress]] = {}
    ids: dict[int, list[int]] = {}
    names: dict[int, str] = {row[0]: row[1] for row in productions}
    tnames: dict[int, tuple[str, str]] = {}
    outcomes: dict[int, dict[str, int]] = {}
    for tid, pid, name, status, task_count, is_root in transformations:
        c = counted.get(tid, none)
        by_production.setdefault(pid, []).append(transformation_progress(name, status, task_count, is_root, c))
        ids.setdefault(pid, []).append(tid)
        tnames[tid] = (names.get(pid, "?"), name)
    for tid, c in counted.items():
        if counters.ATTEMPT in c:
            outcomes[tid] = c[counters.ATTEMPT]
    rows = [
        ProductionRow(
            id=pid,
            name=name,
            status=status,
            owner=owner,
            description=description,
            created_at=created_at,
            updated_at=updated_at,
            progress=ProductionProgress(name, status, tuple(by_production.get(pid, ()))),
            transformation_ids=tuple(ids.get(pid, ())),
        )
        for pid, name, status, owner, description, created_at, updated_at in productions
    ]
    tasks_total: dict[str, int] = {}
    files_total: dict[str, int] = {}
    for c in counted.values():
        for what, total in ((counters.TASK, tasks_total), (counters.FILE, files_total)):
            for st, n in c.get(what, empty).items():
                total[st] = total.get(st, 0) + n
    return Overview(
        productions=rows,
        attempt_outcomes=outcomes,
        transformation_names=tnames,
        files_registered=counted.get(0, {}).get(counters.CATALOG, {}).get(counters.CATALOG_FILES, 0),
        reported_attempts=int(
            session.scalar(select(func.count()).where(JobAttempt.status == AttemptStatus.REPORTED.value)) or 0
        ),
        tasks_by_status=complete_counts(tasks_total, TASK_KEYS),
        files_by_status=complete_counts(files_total, FILE_KEYS),
    )


def links(*, session: Session, production_id: int) -> list[tuple[str, str]]:
    """(parent, child) names of a production's declared links."""
    parent = select(Transformation.id, Transformation.name).subquery()
    child = select(Transformation.id, Transformation.name, Transformation.production_id).subquery()
    rows = session.execute(
        select(parent.c.name, child.c.name)
        .select_from(TransformationLink)
        .join(parent, parent.c.id == TransformationLink.parent_id)
        .join(child, child.c.id == TransformationLink.child_id)
        .where(child.c.production_id == production_id)
        .order_by(child.c.id, parent.c.id)
    )
    return [(p, c) for p, c in rows]


@dataclass(frozen=True)
class FilePage:
    rows: list[tuple[int, str, str, int]]  # file id, lfn, status, error count
    next_after: int | None


def files_page(
    *, session: Session, transformation_id: int, status: str = "", after: int = 0, limit: int = 100
) -> FilePage:
    """A page of a transformation's files by file id (keyset: as fast at the millionth file)."""
    stmt = (
        select(TransformationFile.file_id, CatalogFile.lfn, TransformationFile.status, TransformationFile.error_count)
        .join(CatalogFile, CatalogFile.id == TransformationFile.file_id)
        .where(TransformationFile.transformation_id == transformation_id, TransformationFile.file_id > after)
        .order_by(TransformationFile.file_id)
        .limit(limit + 1)
    )
    if status:
        stmt = stmt.where(TransformationFile.status == status)
    rows = [(int(a), b, c, int(d)) for a, b, c, d in session.execute(stmt)]
    more = len(rows) > limit
    rows = rows[:limit]
    return FilePage(rows, rows[-1][0] if more and rows else None)


@dataclass(frozen=True)
class TaskPage:
    rows: list[Task]
    next_after: int | None


def tasks_page(
    *, session: Session, transformation_id: int, status: str = "", after: int = -1, limit: int = 100
) -> TaskPage:
    """A page of a transformation's tasks by task index (keyset)."""
    stmt = (
        select(Task)
        .where(Task.transformation_id == transformation_id, Task.task_index > after)
        .order_by(Task.task_index)
        .limit(limit + 1)
    )
    if status:
        stmt = stmt.where(Task.status == status)
    rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return TaskPage(rows, rows[-1].task_index if more and rows else None)


def failed_tasks(*, session: Session, transformation_id: int, limit: int = 50) -> list[Task]:
    """Its failed (and killed) tasks with their last error, newest first."""
    return list(
        session.scalars(
            select(Task)
            .where(
                Task.transformation_id == transformation_id,
                Task.status.in_([TaskStatus.FAILED.value, TaskStatus.KILLED.value]),
            )
            .order_by(Task.updated_at.desc(), Task.id.desc())
            .limit(limit)
        )
    )


def attempts_of(*, session: Session, task_id: int) -> list[JobAttempt]:
    return list(session.scalars(select(JobAttempt).where(JobAttempt.task_id == task_id).order_by(JobAttempt.attempt)))


def task_inputs(*, session: Session, task_id: int, limit: int = 200) -> list[str]:
    return list(
        session.scalars(
            select(CatalogFile.lfn)
            .join(TaskInput, TaskInput.file_id == CatalogFile.id)
            .where(TaskInput.task_id == task_id)
            .order_by(TaskInput.position)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class AgentRow:
    name: str
    host: str
    pid: int
    started_at: datetime
    last_beat: datetime
    last_status: str
    stopped: bool
    cycles: int
    cycle_seconds_total: float
    last_cycle_seconds: float


def agents(*, session: Session) -> list[AgentRow]:
    rows = session.execute(
        select(
            AgentHeartbeat.name,
            AgentHeartbeat.host,
            AgentHeartbeat.pid,
            AgentHeartbeat.started_at,
            AgentHeartbeat.last_beat,
            AgentHeartbeat.last_status,
            AgentHeartbeat.stopped,
            AgentHeartbeat.cycles,
            AgentHeartbeat.cycle_seconds_total,
            AgentHeartbeat.last_cycle_seconds,
        ).order_by(AgentHeartbeat.name, AgentHeartbeat.host, AgentHeartbeat.pid)
    )
    return [AgentRow(**row._mapping) for row in rows]


# --- stored samples (history plots) ------------------------------------------------------

SampleValues = tuple[int, int, int, int, int]  # done, failed, pending, queued tasks, running tasks


def current_values(view: Overview) -> dict[int, tuple[int, SampleValues]]:
    """{transformation id: (production id, values)} of every transformation not Cleaned."""
    result: dict[int, tuple[int, SampleValues]] = {}
    for row in view.productions:
        if row.status == ProductionStatus.CLEANED.value:
            continue
        for tid, t in zip(row.transformation_ids, row.progress.transformations, strict=True):
            units = work_units(t)
            queued = t.tasks.get(TaskStatus.CREATED, 0)
            running = t.tasks.get(TaskStatus.SUBMITTED, 0) + t.tasks.get(TaskStatus.RUNNING, 0)
            result[tid] = (row.id, (units.done, units.failed, units.pending, queued, running))
    return result


def latest_samples(*, session: Session) -> dict[int, SampleValues]:
    """The last stored values of every transformation (once, when a sampler starts)."""
    last = select(func.max(MonitorSample.id).label("id")).group_by(MonitorSample.transformation_id).subquery()
    rows = session.execute(
        select(
            MonitorSample.transformation_id,
            MonitorSample.done,
            MonitorSample.failed,
            MonitorSample.pending,
            MonitorSample.queued_tasks,
            MonitorSample.running_tasks,
        ).join(last, last.c.id == MonitorSample.id)
    )
    return {int(r[0]): (r[1], r[2], r[3], r[4], r[5]) for r in rows}


def last_sample_time(*, session: Session) -> datetime | None:
    return session.scalar(select(func.max(MonitorSample.time)))


SAMPLE_COLUMNS = (
    "time",
    "production_id",
    "transformation_id",
    "done",
    "failed",
    "pending",
    "queued_tasks",
    "running_tasks",
)


def store_samples(*, session: Session, time: datetime, rows: Sequence[tuple[int, int, SampleValues]]) -> int:
    """(production id, transformation id, values) rows at one time, in one statement."""
    when = bind_value(session, MonitorSample.__table__.c.time, time)  # type: ignore[attr-defined]
    return executemany(
        session,
        MonitorSample.__table__,  # type: ignore[arg-type]
        SAMPLE_COLUMNS,
        [(when, pid, tid, *values) for pid, tid, values in rows],
    )


def prune_samples(*, session: Session, before: datetime) -> int:
    return int(session.execute(delete(MonitorSample).where(MonitorSample.time < before)).rowcount)  # type: ignore[attr-defined]


def sample_series(*, session: Session, transformation_ids: Sequence[int], since: datetime) -> dict[int, list[Point]]:
    """Each transformation's points since `since`, led by its last point before (the state then)."""
    result: dict[int, list[Point]] = {}
    if not transformation_ids:
        return result
    ids = list(transformation_ids)
    columns = (
        MonitorSample.transformation_id,
        MonitorSample.time,
        MonitorSample.done,
        MonitorSample.failed,
        MonitorSample.pending,
        MonitorSample.queued_tasks,
        MonitorSample.running_tasks,
    )
    before = (
        select(func.max(MonitorSample.id).label("id"))
        .where(MonitorSample.transformation_id.in_(ids), MonitorSample.time < since)
        .group_by(MonitorSample.transformation_id)
        .subquery()
    )
    leading = session.execute(select(*columns).join(before, before.c.id == MonitorSample.id))
    recent = session.execute(
        select(*columns)
        .where(MonitorSample.transformation_id.in_(ids), MonitorSample.time >= since)
        .order_by(MonitorSample.time, MonitorSample.id)
    )
    for tid, time, *values in [*leading, *recent]:
        result.setdefault(int(tid), []).append(Point(max(time, since), *values))
    return result


# --- attempts in a time window (histograms) ----------------------------------------------


def durations_between(*, session: Session, after: datetime, upto: datetime) -> list[tuple[str, float]]:
    """(outcome, seconds run) of the attempts that finished in (after, upto]."""
    rows = session.execute(
        select(JobAttempt.status, JobAttempt.started_at, JobAttempt.finished_at).where(
            JobAttempt.finished_at > after, JobAttempt.finished_at <= upto, JobAttempt.started_at.is_not(None)
        )
    )
    return [(st, max(0.0, (end - start).total_seconds())) for st, start, end in rows if start and end]


def file_waits_between(*, session: Session, after: datetime, upto: datetime) -> list[float]:
    """Seconds from each input file's registration to the start of the first attempt of the
    task that took it, for the first attempts that started in (after, upto]."""
    rows = session.execute(
        select(JobAttempt.started_at, CatalogFile.created_at)
        .join(TaskInput, TaskInput.task_id == JobAttempt.task_id)
        .join(CatalogFile, CatalogFile.id == TaskInput.file_id)
        .where(JobAttempt.started_at > after, JobAttempt.started_at <= upto, JobAttempt.attempt == 1)
    )
    return [max(0.0, (start - created).total_seconds()) for start, created in rows if start]
