"""Status bookkeeping the production agent does: the end (and outcome) of transformations
and productions, their reopening when new work appears, and cleaning. Set-based: a handful of statements per cycle."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from metaprod.core.statuses import (
    ACTIVE_TASK_STATUSES,
    PRODUCTION_OUTCOMES,
    TRANSFORMATION_OUTCOMES,
    FileStatus,
    ProductionStatus,
    TaskStatus,
    TransformationStatus,
    production_outcome,
    transformation_outcome,
)
from metaprod.db import cleaning, counters, events
from metaprod.db.models import Production, Task, Transformation, TransformationFile, TransformationLink, utcnow
from sqlalchemy import ColumnElement, exists, func, select, update
from sqlalchemy.orm import Session, aliased

ACTIVE_TASKS = [s.value for s in ACTIVE_TASK_STATUSES]
OPEN_FILES = [FileStatus.UNUSED.value, FileStatus.ASSIGNED.value]
ENDED_TRANSFORMATIONS = [s.value for s in TRANSFORMATION_OUTCOMES]
ENDED_PRODUCTIONS = [s.value for s in PRODUCTION_OUTCOMES]
FAILED_FILES = [FileStatus.PROBLEMATIC.value]
FAILED_TASKS = [TaskStatus.FAILED.value, TaskStatus.KILLED.value]
AGENT = events.agent_actor("production")


@dataclass(frozen=True)
class LifecycleSummary:
    transformations_ended: int
    productions_ended: int
    reopened: int
    productions_cleaned: int

    def __str__(self) -> str:
        return (
            f"ended {self.transformations_ended} transformations, {self.productions_ended} productions; "
            f"reopened {self.reopened}; cleaned {self.productions_cleaned}"
        )

    @property
    def idle(self) -> bool:
        return not (self.transformations_ended or self.productions_ended or self.reopened or self.productions_cleaned)


def _pending_work(t: type[Transformation]) -> ColumnElement[bool]:
    """Work of a transformation not done yet: an open file, an unfinished task, or (a root
    with a task count) tasks still to create."""
    unfinished_task = exists().where(Task.transformation_id == t.id, Task.status.in_(ACTIVE_TASKS))
    open_file = exists().where(TransformationFile.transformation_id == t.id, TransformationFile.status.in_(OPEN_FILES))
    # The next task index (one probe of the unique (transformation_id, task_index) index), as
    # task creation reads it: a count would scan a root's millions of tasks in every cycle.
    next_index = (
        select(func.coalesce(func.max(Task.task_index) + 1, 0)).where(Task.transformation_id == t.id).scalar_subquery()
    )
    short_of_tasks = t.input_query.is_(None) & (next_index < func.coalesce(t.task_count, 0))
    return unfinished_task | open_file | short_of_tasks


def end_transformations(*, session: Session) -> int:
    """Active transformations that no more input can reach and that have nothing pending end,
    with their outcome. No more input: a root with a task count (its tasks exist: see
    _pending_work), a catalog-fed root whose input is closed, a child whose parents all ended."""
    t = Transformation
    parent = aliased(Transformation)
    has_parent = exists().where(TransformationLink.child_id == t.id)
    parent_not_ended = exists().where(
        TransformationLink.child_id == t.id,
        TransformationLink.parent_id == parent.id,
        parent.status.not_in(ENDED_TRANSFORMATIONS),
    )
    input_ended = t.input_query.is_(None) | (has_parent & ~parent_not_ended) | (~has_parent & t.input_closed)
    ended = 0
    # Repeat so a chain whose steps all finished ends in one cycle, parent before child.
    for _ in range(32):
        ids = list(
            session.scalars(
                select(t.id).where(t.status == TransformationStatus.ACTIVE.value, input_ended, ~_pending_work(t))
            )
        )
        if not ids:
            break
        outcomes = _outcomes(session, ids)
        for outcome in set(outcomes.values()):
            chosen = [tid for tid, o in outcomes.items() if o == outcome]
            session.execute(
                update(Transformation)
                .where(Transformation.id.in_(chosen), Transformation.status == TransformationStatus.ACTIVE.value)
                .values(status=outcome.value, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            events.record_many(
                session=session,
                actor=AGENT,
                events=events.transformation_events(session=session, transformation_ids=chosen, event=outcome.lower()),
            )
        ended += len(ids)
    return ended


def _outcomes(session: Session, ids: list[int]) -> dict[int, TransformationStatus]:
    """The outcome of each transformation, from its status counters (db.counters: kept in the
    transactions that move its files and tasks; a grouped count of the rows was a scan of a
    transformation's millions of files on SQLite, which has no loose index scan)."""
    counted = counters.counts(session, ids)
    outcomes: dict[int, TransformationStatus] = {}
    for tid in ids:
        files = counted.get(tid, {}).get(counters.FILE, {})
        tasks = counted.get(tid, {}).get(counters.TASK, {})
        failures = files.get(FileStatus.PROBLEMATIC.value, 0) > 0 or any(tasks.get(s, 0) > 0 for s in FAILED_TASKS)
        successes = files.get(FileStatus.PROCESSED.value, 0) > 0 or tasks.get(TaskStatus.DONE.value, 0) > 0
        outcomes[tid] = transformation_outcome(failures=failures, successes=successes)
    return outcomes


def reopen_transformations(*, session: Session, ids: Iterable[int] | None = None, actor: str = AGENT) -> int:
    """Ended transformations with new work (new input, a retried task, a reset, an extension),
    or the given ones when ended, go back to Active; so do their ended descendants, which may
    get new input from them, and their productions. Returns how many transformations reopened."""
    t = Transformation
    # Only in a running or ended production: a stopped one reopens its steps when started.
    running = select(Production.id).where(Production.status.in_([ProductionStatus.ACTIVE.value, *ENDED_PRODUCTIONS]))
    stmt = select(t.id).where(t.status.in_(ENDED_TRANSFORMATIONS), t.production_id.in_(running))
    stmt = stmt.where(_pending_work(t)) if ids is None else stmt.where(t.id.in_(list(ids)))
    found = set(session.scalars(stmt))
    frontier = set(found)
    while frontier:  # descendants, a generation per statement
        children = set(
            session.scalars(
                select(TransformationLink.child_id)
                .join(t, t.id == TransformationLink.child_id)
                .where(
                    TransformationLink.parent_id.in_(frontier),
                    t.status.in_(ENDED_TRANSFORMATIONS),
                    t.production_id.in_(running),
                )
            )
        )
        frontier = children - found
        found |= frontier
    if not found:
        return 0
    reopened = sorted(found)
    session.execute(
        update(Transformation)
        .where(Transformation.id.in_(reopened), Transformation.status.in_(ENDED_TRANSFORMATIONS))
        .values(status=TransformationStatus.ACTIVE.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    events.record_many(
        session=session,
        actor=actor,
        events=events.transformation_events(session=session, transformation_ids=reopened, event="reopened"),
    )
    production_ids = select(Transformation.production_id).where(Transformation.id.in_(reopened))
    productions = list(
        session.scalars(
            select(Production.id).where(Production.id.in_(production_ids), Production.status.in_(ENDED_PRODUCTIONS))
        )
    )
    if productions:
        session.execute(
            update(Production)
            .where(Production.id.in_(productions))
            .values(status=ProductionStatus.ACTIVE.value, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        events.record_many(session=session, actor=actor, events=[events.Event(pid, "reopened") for pid in productions])
    return len(reopened)


def end_productions(*, session: Session) -> int:
    """Active productions whose transformations have all ended end too, with their outcome."""
    not_ended = exists().where(
        Transformation.production_id == Production.id, Transformation.status.not_in(ENDED_TRANSFORMATIONS)
    )
    any_transformation = exists().where(Transformation.production_id == Production.id)
    ids = list(
        session.scalars(
            select(Production.id).where(
                Production.status == ProductionStatus.ACTIVE.value, any_transformation, ~not_ended
            )
        )
    )
    if not ids:
        return 0
    outcomes: dict[int, list[str]] = {}
    for pid, status in session.execute(
        select(Transformation.production_id, Transformation.status).where(Transformation.production_id.in_(ids))
    ):
        outcomes.setdefault(pid, []).append(status)
    with_done = set(
        session.scalars(
            select(Transformation.production_id)
            .where(
                Transformation.production_id.in_(ids),
                exists().where(Task.transformation_id == Transformation.id, Task.status == TaskStatus.DONE.value),
            )
            .distinct()
        )
    )
    ended: dict[ProductionStatus, list[int]] = {}
    for pid, statuses in outcomes.items():
        ended.setdefault(production_outcome(statuses, any_task_done=pid in with_done), []).append(pid)
    for outcome, chosen in ended.items():
        session.execute(
            update(Production)
            .where(Production.id.in_(chosen), Production.status == ProductionStatus.ACTIVE.value)
            .values(status=outcome.value, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        events.record_many(session=session, actor=AGENT, events=[events.Event(pid, outcome.lower()) for pid in chosen])
    return len(ids)


def clean_productions(*, session: Session, dispose: cleaning.Dispose | None = None) -> int:
    """Cleaning productions lose their execution records, logs and scratch (and, with
    purge_outputs, their outputs): see db.cleaning. `dispose` removes files (agents)."""
    return cleaning.clean_productions(session=session, dispose=dispose or cleaning.ignore)


def run_lifecycle(*, session: Session, dispose: cleaning.Dispose | None = None) -> LifecycleSummary:
    # Reopen first: an ended step that got new work must not be counted as ended again.
    reopened = reopen_transformations(session=session)
    return LifecycleSummary(
        transformations_ended=end_transformations(session=session),
        productions_ended=end_productions(session=session),
        reopened=reopened,
        productions_cleaned=clean_productions(session=session, dispose=dispose),
    )
