"""One task as `metaprod task show` gives it: its transformation and production, inputs,
attempts, outputs, and whether its transformation keeps checkpoints. A handful of indexed
queries; the storage side (the saved checkpoint) is the caller's (metaprod.services.storage)."""

from __future__ import annotations

from dataclasses import dataclass

from metaprod.core.auth import Principal, ensure_can_read
from metaprod.core.errors import NotFound
from metaprod.db.models import CatalogFile, JobAttempt, Production, Task, Transformation
from metaprod.db.transformations import task_input_lfns
from sqlalchemy import select
from sqlalchemy.orm import Session

# Outputs listed at most: a task makes a few files; this bounds a pathological one's answer.
MAX_OUTPUTS = 10_000


@dataclass(frozen=True)
class TaskDetail:
    task: Task
    transformation: str
    production: str
    keep_checkpoints: bool
    inputs: list[str]
    attempts: list[JobAttempt]
    outputs: list[str]


def task_detail(*, session: Session, task_id: int, principal: Principal) -> TaskDetail:
    ensure_can_read(principal)
    row = session.execute(
        select(Task, Transformation, Production.name)
        .join(Transformation, Transformation.id == Task.transformation_id)
        .join(Production, Production.id == Transformation.production_id)
        .where(Task.id == task_id)
    ).first()
    if row is None:
        raise NotFound(f"task {task_id} does not exist")
    task, transformation, production = row
    attempts = list(
        session.scalars(select(JobAttempt).where(JobAttempt.task_id == task.id).order_by(JobAttempt.attempt))
    )
    # Provenance names the producer (no foreign key: a deleted production's files keep it), so
    # the names are matched too: a task id is never taken for another production's.
    outputs = list(
        session.scalars(
            select(CatalogFile.lfn)
            .where(
                CatalogFile.producer_task_id == task.id,
                CatalogFile.producer_production_id == transformation.production_id,
                CatalogFile.producer_transformation == transformation.name,
            )
            .order_by(CatalogFile.lfn)
            .limit(MAX_OUTPUTS)
        )
    )
    return TaskDetail(
        task=task,
        transformation=transformation.name,
        production=production,
        keep_checkpoints=(transformation.spec or {}).get("keep_checkpoints") is True,
        inputs=task_input_lfns(session=session, task_ids=[task.id]).get(task.id, []),
        attempts=attempts,
        outputs=outputs,
    )
