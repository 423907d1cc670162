"""Status bookkeeping the production agent does: completion of transformations and
productions, and cleaning. Set-based: a handful of statements per cycle."""

from __future__ import annotations

from dataclasses import dataclass

from metaprod.core.statuses import (
    ACTIVE_TASK_STATUSES,
    FileStatus,
    ProductionStatus,
    TransformationStatus,
)
from metaprod.db.models import Production, Task, Transformation, TransformationFile, TransformationLink, utcnow
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session, aliased

ACTIVE_TASKS = [s.value for s in ACTIVE_TASK_STATUSES]
OPEN_FILES = [FileStatus.UNUSED.value, FileStatus.ASSIGNED.value]


@dataclass(frozen=True)
class LifecycleSummary:
    transformations_completed: int
    productions_completed: int
    productions_cleaned: int

    def __str__(self) -> str:
        return (
            f"completed {self.transformations_completed} transformations, {self.productions_completed} "
            f"productions; cleaned {self.productions_cleaned}"
        )


def complete_transformations(*, session: Session) -> int:
    """Active transformations where no more work can appear become Completed.

    A root: all its declared tasks exist and none is unfinished. A child: every parent is
    Completed, no file is Unused or Assigned, no task is unfinished (and, without parents,
    it has seen at least one file: an import-fed transformation is not done before it began).
    """
    t = Transformation
    parent = aliased(Transformation)
    unfinished_task = exists().where(Task.transformation_id == t.id, Task.status.in_(ACTIVE_TASKS))
    task_total = select(func.count()).where(Task.transformation_id == t.id).scalar_subquery()
    open_file = exists().where(TransformationFile.transformation_id == t.id, TransformationFile.status.in_(OPEN_FILES))
    any_file = exists().where(TransformationFile.transformation_id == t.id)
    has_parent = exists().where(TransformationLink.child_id == t.id)
    parent_not_done = exists().where(
        TransformationLink.child_id == t.id,
        TransformationLink.parent_id == parent.id,
        parent.status != TransformationStatus.COMPLETED.value,
    )
    root_done = t.input_query.is_(None) & (task_total >= func.coalesce(t.task_count, 0)) & ~unfinished_task
    child_done = t.input_query.is_not(None) & ~parent_not_done & ~open_file & ~unfinished_task & (has_parent | any_file)
    completed = 0
    # Repeat so a chain whose steps all finished completes in one cycle, parent before child.
    for _ in range(32):
        ids = list(
            session.scalars(select(t.id).where(t.status == TransformationStatus.ACTIVE.value, root_done | child_done))
        )
        if not ids:
            break
        session.execute(
            update(Transformation)
            .where(Transformation.id.in_(ids))
            .values(status=TransformationStatus.COMPLETED.value, updated_at=utcnow())
        )
        completed += len(ids)
    return completed


def complete_productions(*, session: Session) -> int:
    not_done = exists().where(
        Transformation.production_id == Production.id,
        Transformation.status != TransformationStatus.COMPLETED.value,
    )
    any_transformation = exists().where(Transformation.production_id == Production.id)
    return int(
        session.execute(
            update(Production)
            .where(Production.status == ProductionStatus.ACTIVE.value, any_transformation, ~not_done)
            .values(status=ProductionStatus.COMPLETED.value, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    )


def clean_productions(*, session: Session) -> int:
    """Cleaning productions lose their tasks and file assignments (catalog files stay)."""
    ids = list(session.scalars(select(Production.id).where(Production.status == ProductionStatus.CLEANING.value)))
    if not ids:
        return 0
    transformation_ids = select(Transformation.id).where(Transformation.production_id.in_(ids))
    session.execute(
        delete(TransformationFile)
        .where(TransformationFile.transformation_id.in_(transformation_ids))
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(Task).where(Task.transformation_id.in_(transformation_ids)).execution_options(synchronize_session=False)
    )
    session.execute(
        update(Transformation)
        .where(Transformation.production_id.in_(ids))
        .values(status=TransformationStatus.CLEANED.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Production)
        .where(Production.id.in_(ids))
        .values(status=ProductionStatus.CLEANED.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return len(ids)


def run_lifecycle(*, session: Session) -> LifecycleSummary:
    return LifecycleSummary(
        transformations_completed=complete_transformations(session=session),
        productions_completed=complete_productions(session=session),
        productions_cleaned=clean_productions(session=session),
    )
