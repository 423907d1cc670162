"""Recovery and lifecycle verbs of a person: close a catalog-fed input, retry failed or
killed tasks, extend a root, flush partial groups, reset Problematic files. Each records an
event and reopens what it gives new work to, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from metaprod.core.auth import Principal, ensure_owns
from metaprod.core.errors import FailedPrecondition, InvalidArgument, NotFound
from metaprod.core.limits import MAX_TASKS_PER_ROOT, check_lfn_lookup
from metaprod.core.statuses import RETRYABLE_TASK_STATUSES, FileStatus, TaskStatus, TransformationStatus
from metaprod.db import counters, events, lifecycle, tasks
from metaprod.db.models import (
    CatalogFile,
    Production,
    Task,
    TaskInput,
    Transformation,
    TransformationFile,
    TransformationLink,
    utcnow,
)
from metaprod.db.productions import get_production
from metaprod.db.transformations import get_transformation, production_of
from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session

RETRYABLE = [s.value for s in RETRYABLE_TASK_STATUSES]
# A killed task's files went back to Unused; one that another task took since (or that was
# processed) keeps the killed task from running again, or the file would be processed twice.
TAKEN_ELSEWHERE = [FileStatus.ASSIGNED.value, FileStatus.PROCESSED.value]


def _owned(session: Session, production: str, name: str, principal: Principal) -> tuple[Production, Transformation]:
    t = get_transformation(session=session, production=production, name=name)
    p = production_of(session=session, transformation=t)
    ensure_owns(principal, p.owner, f"production {p.name!r}")
    return p, t


def _catalog_fed_roots(session: Session, production: Production) -> list[Transformation]:
    has_parent = exists().where(TransformationLink.child_id == Transformation.id)
    return list(
        session.scalars(
            select(Transformation).where(
                Transformation.production_id == production.id, Transformation.input_query.is_not(None), ~has_parent
            )
        )
    )


def close_production(*, session: Session, name: str, principal: Principal) -> list[str]:
    """Close the input of every catalog-fed root of a production; returns their names."""
    production = get_production(session=session, name=name)
    ensure_owns(principal, production.owner, f"production {production.name!r}")
    roots = _catalog_fed_roots(session, production)
    if not roots:
        raise FailedPrecondition(f"production {name!r} has no catalog-fed root (an input_query without parents)")
    for t in roots:
        t.input_closed = True
    events.record(
        session=session,
        actor=events.actor_of(principal),
        production_id=production.id,
        event="closed",
        detail="input closed: " + ", ".join(t.name for t in roots),
    )
    session.flush()
    return [t.name for t in roots]


def close_transformation(*, session: Session, production: str, name: str, principal: Principal) -> Transformation:
    p, t = _owned(session, production, name, principal)
    if t not in _catalog_fed_roots(session, p):
        raise FailedPrecondition(
            f"transformation {name!r} is not fed by the catalog (an input_query without parents): "
            "its input ends when its parents end, or with its task count"
        )
    t.input_closed = True
    events.record(
        session=session, actor=events.actor_of(principal), production_id=p.id, event="closed", transformation=t.name
    )
    session.flush()
    return t


@dataclass(frozen=True)
class RetryResult:
    tasks: int  # tasks given a fresh attempt budget
    files: int  # Problematic files not held by a retried task, back to Unused
    skipped: tuple[int, ...]  # killed tasks whose inputs other tasks took since


def retry(
    *, session: Session, production: str, name: str, task_ids: Sequence[int] = (), principal: Principal
) -> RetryResult:
    """Failed and Killed tasks (all, or the named ones) get a fresh attempt budget and run
    again; without named tasks, every other Problematic file goes back to Unused too."""
    p, t = _owned(session, production, name, principal)
    stmt = select(Task.id, Task.status).where(Task.transformation_id == t.id)
    if task_ids:
        wanted = sorted(set(task_ids))
        found = dict(session.execute(stmt.where(Task.id.in_(wanted))).all())
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(f"transformation {name!r} of production {production!r} has no task {missing[0]}")
        not_retryable = [i for i in wanted if found[i] not in RETRYABLE]
        if not_retryable:
            i = not_retryable[0]
            raise FailedPrecondition(f"task {i} is {found[i]}: only Failed and Killed tasks can be retried")
        candidates = wanted
    else:
        candidates = list(
            session.scalars(select(Task.id).where(Task.transformation_id == t.id, Task.status.in_(RETRYABLE)))
        )
    skipped: list[int] = []
    if candidates:
        skipped = sorted(
            set(
                session.scalars(
                    select(TaskInput.task_id)
                    .join(
                        TransformationFile,
                        (TransformationFile.file_id == TaskInput.file_id)
                        & (TransformationFile.transformation_id == t.id),
                    )
                    .where(
                        TaskInput.task_id.in_(candidates),
                        TransformationFile.status.in_(TAKEN_ELSEWHERE),
                        # A Failed task's files are Problematic; this only catches Killed ones.
                        TaskInput.task_id.in_(select(Task.id).where(Task.status == TaskStatus.KILLED.value)),
                    )
                )
            )
        )
    chosen = [i for i in candidates if i not in set(skipped)]
    now = utcnow()
    if chosen:
        counters.count_moves(session, counters.TASK, Task.id.in_(chosen), TaskStatus.CREATED.value)
        session.execute(
            update(Task)
            .where(Task.id.in_(chosen))
            .values(status=TaskStatus.CREATED.value, attempts_base=Task.attempt, not_before=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        # Their files are theirs again (Failed: Problematic; Killed: Unused).
        theirs = and_(
            TransformationFile.transformation_id == t.id,
            TransformationFile.file_id.in_(select(TaskInput.file_id).where(TaskInput.task_id.in_(chosen))),
        )
        counters.count_moves(session, counters.FILE, theirs, FileStatus.ASSIGNED.value)
        session.execute(
            update(TransformationFile)
            .where(theirs)
            .values(status=FileStatus.ASSIGNED.value, error_count=0, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    files = 0
    if not task_ids:
        files = _reset(session, t, lfn_ids=None)
    if not chosen and not files:
        raise FailedPrecondition(
            f"transformation {name!r} has nothing to retry (no Failed or Killed task, no Problematic file)"
            + (f"; killed tasks {skipped} lost their inputs to other tasks" if skipped else "")
        )
    detail = f"{len(chosen)} tasks" + (f" ({', '.join(map(str, chosen[:20]))})" if task_ids else "")
    if files:
        detail += f", {files} Problematic files back to Unused"
    events.record(
        session=session,
        actor=events.actor_of(principal),
        production_id=p.id,
        event="retried",
        transformation=t.name,
        detail=detail,
    )
    lifecycle.reopen_transformations(session=session, ids=[t.id], actor=events.actor_of(principal))
    session.flush()
    return RetryResult(len(chosen), files, tuple(skipped))


def retry_task(*, session: Session, task_id: int, principal: Principal) -> RetryResult:
    row = session.execute(
        select(Production.name, Transformation.name)
        .join(Transformation, Transformation.production_id == Production.id)
        .join(Task, Task.transformation_id == Transformation.id)
        .where(Task.id == task_id)
    ).first()
    if row is None:
        raise NotFound(f"task {task_id} does not exist")
    return retry(session=session, production=row[0], name=row[1], task_ids=[task_id], principal=principal)


def extend(*, session: Session, production: str, name: str, count: int, principal: Principal) -> Transformation:
    """A root with a task count gets `count` more tasks (indexes continue)."""
    p, t = _owned(session, production, name, principal)
    if t.input_query is not None or t.task_count is None:
        raise FailedPrecondition(
            f"transformation {name!r} is not a root with a task count (tasks: N): it cannot be extended"
        )
    if count < 1 or t.task_count + count > MAX_TASKS_PER_ROOT:
        raise InvalidArgument(
            f"extend by a positive number of tasks, at most {max(0, MAX_TASKS_PER_ROOT - t.task_count)} "
            f"(a root has at most {MAX_TASKS_PER_ROOT} tasks), not {count}"
        )
    t.task_count += count
    events.record(
        session=session,
        actor=events.actor_of(principal),
        production_id=p.id,
        event="extended",
        transformation=t.name,
        detail=f"{count} more tasks, {t.task_count} in all",
    )
    lifecycle.reopen_transformations(session=session, ids=[t.id], actor=events.actor_of(principal))
    session.flush()
    return t


def flush(*, session: Session, production: str, name: str, principal: Principal) -> int:
    """Partial groups of a transformation become tasks now; returns how many tasks were made."""
    p, t = _owned(session, production, name, principal)
    if t.input_query is None:
        raise FailedPrecondition(f"transformation {name!r} is a root without input: it has no groups to flush")
    if t.status != TransformationStatus.ACTIVE:
        raise FailedPrecondition(f"transformation {name!r} is {t.status}: only an Active one is flushed")
    made = tasks.create_tasks(session=session, transformation_id=t.id, flush=True)
    if made is None:
        raise FailedPrecondition(f"transformation {name!r} is being grouped by an agent right now: try again")
    events.record(
        session=session,
        actor=events.actor_of(principal),
        production_id=p.id,
        event="flushed",
        transformation=t.name,
        detail=f"{made.tasks} tasks of {made.files} files",
    )
    session.flush()
    return made.tasks


def reset_files(*, session: Session, production: str, name: str, lfns: list[str], principal: Principal) -> int:
    """Problematic files back to Unused (all of them, or the named ones)."""
    _, t = _owned(session, production, name, principal)
    file_ids = None
    if lfns:
        for lfn in lfns:
            check_lfn_lookup(lfn)
        known = set(session.scalars(select(CatalogFile.lfn).where(CatalogFile.lfn.in_(lfns))))
        missing = sorted(set(lfns) - known)
        if missing:
            raise NotFound(f"unknown LFN {missing[0]!r}")
        file_ids = list(session.scalars(select(CatalogFile.id).where(CatalogFile.lfn.in_(lfns))))
    count = _reset(session, t, file_ids)
    if count:
        actor = events.actor_of(principal)
        events.record(
            session=session,
            actor=actor,
            production_id=t.production_id,
            event="reset",
            transformation=t.name,
            detail=f"{count} Problematic files back to Unused",
        )
        lifecycle.reopen_transformations(session=session, ids=[t.id], actor=actor)
    session.flush()
    return count


def _reset(session: Session, t: Transformation, lfn_ids: Sequence[int] | None) -> int:
    stmt = update(TransformationFile).where(
        TransformationFile.transformation_id == t.id, TransformationFile.status == FileStatus.PROBLEMATIC.value
    )
    if lfn_ids is not None:
        stmt = stmt.where(TransformationFile.file_id.in_(lfn_ids))
    count = int(
        session.execute(
            stmt.values(status=FileStatus.UNUSED.value, error_count=0, updated_at=utcnow()).execution_options(
                synchronize_session=False
            )
        ).rowcount  # type: ignore[attr-defined]
    )
    counters.record_move(session, counters.FILE, t.id, FileStatus.PROBLEMATIC.value, FileStatus.UNUSED.value, count)
    return count
