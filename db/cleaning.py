"""`production delete`: execution data goes, datasets stay.

Deleting a production moves it to Cleaning (its tasks killed). Once none of its attempts is
live any more (the monitor agent has cancelled their jobs), the production agent removes its
execution records (tasks with their inputs and attempts, file assignments), the attempts'
logs and work directories and, with `purge_outputs`, the files it produced (catalog rows,
their metadata, and their stored content). Otherwise the produced files stay in the catalog
with their provenance, which lives on the files themselves (db.catalog). The production is
then Cleaned and its name is free (`live_name` NULL).

Files on disk and in storage are removed by the caller's `dispose` (agents do I/O, db/ does
not), batch by batch, before the records naming them are deleted in the same transaction: a
crash between the two leaves records whose files are gone, and the next cycle finishes the job;
never stored files no record names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from metaprod.core.auth import Principal
from metaprod.core.statuses import LIVE_ATTEMPT_STATUSES, AttemptStatus, ProductionStatus, TransformationStatus
from metaprod.db import counters, events, productions
from metaprod.db.locking import claim
from metaprod.db.models import (
    CatalogFile,
    JobAttempt,
    Production,
    Task,
    Transformation,
    TransformationFile,
    utcnow,
)
from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session, aliased

CLEAN_BATCH = 1000
AGENT = events.agent_actor("production")
# Attempts whose job may still write to its log and work directory, or whose report waits.
UNSETTLED_ATTEMPTS = [s.value for s in LIVE_ATTEMPT_STATUSES] + [AttemptStatus.REPORTED.value]


@dataclass(frozen=True)
class Disposal:
    """What a cleaning batch removes outside the database: local paths (attempts' logs and
    work directories) and the storage URLs (PFNs) of purged outputs."""

    paths: tuple[str, ...] = ()
    stored: tuple[str, ...] = ()


Dispose = Callable[[Disposal], None]


def ignore(_: Disposal) -> None:
    return None


def request_delete(*, session: Session, name: str, principal: Principal, purge_outputs: bool = False) -> Production:
    """`production delete NAME [--purge-outputs]`: Cleaning, tasks killed; the production agent
    does the rest (clean_productions)."""
    production = productions.set_production_status(
        session=session, name=name, target=ProductionStatus.CLEANING, principal=principal
    )
    if purge_outputs:
        production.purge_outputs = True
    session.flush()
    return production


def clean_productions(*, session: Session, dispose: Dispose = ignore, batch: int = CLEAN_BATCH) -> int:
    """Clean every Cleaning production whose attempts have all settled; returns how many."""
    p, t = Production, Transformation
    unsettled = (
        exists()
        .where(
            t.production_id == p.id,
            Task.transformation_id == t.id,
            JobAttempt.task_id == Task.id,
            JobAttempt.status.in_(UNSETTLED_ATTEMPTS),
        )
        .correlate(p)
    )
    rows = session.execute(
        claim(  # type: ignore[type-var]
            session, select(p.id, p.purge_outputs).where(p.status == ProductionStatus.CLEANING.value, ~unsettled)
        )
    ).all()
    for production_id, purge in rows:
        purged = _purge_outputs(session, production_id, dispose, batch) if purge else 0
        tasks = _remove_execution_records(session, production_id, dispose, batch)
        transformation_ids = select(t.id).where(t.production_id == production_id)
        session.execute(
            update(Transformation)
            .where(Transformation.production_id == production_id)
            .values(status=TransformationStatus.CLEANED.value, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        session.execute(
            delete(TransformationFile)
            .where(TransformationFile.transformation_id.in_(transformation_ids))
            .execution_options(synchronize_session=False)
        )
        # Its tasks and files are gone: so are its counts (zero, as a scan would say).
        counters.drop(session, session.scalars(transformation_ids))
        session.execute(
            update(Production)
            .where(Production.id == production_id)
            .values(status=ProductionStatus.CLEANED.value, live_name=None, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        detail = f"{tasks} tasks removed" + (f", {purged} outputs purged" if purge else ", outputs kept")
        events.record(session=session, actor=AGENT, production_id=production_id, event="cleaned", detail=detail)
    session.flush()
    return len(rows)


def _purge_outputs(session: Session, production_id: int, dispose: Dispose, batch: int) -> int:
    """The files the production produced leave the storage, then the catalog (their metadata,
    provenance and assignments cascade), a batch at a time."""
    purged = 0
    while True:
        chunk = session.execute(
            select(CatalogFile.id, CatalogFile.pfn)
            .where(CatalogFile.producer_production_id == production_id)
            .order_by(CatalogFile.id)
            .limit(batch)
        ).all()
        if not chunk:
            return purged
        # Reuse by content shares stored content between files: content another file (of
        # another production, or not purged yet) still names stays.
        ids = [file_id for file_id, _ in chunk]
        pfns = sorted({pfn for _, pfn in chunk if pfn})
        # The sharers are reused files (indexed) and the originals of reused ones (by producer).
        originals = select(CatalogFile.reused_from).where(CatalogFile.id.in_(ids), CatalogFile.reused_from.is_not(None))
        sharers = CatalogFile.reused_from.is_not(None) | CatalogFile.producer_task_id.in_(originals)
        shared = set(
            session.scalars(
                select(CatalogFile.pfn).where(sharers, CatalogFile.pfn.in_(pfns), CatalogFile.id.not_in(ids))
            )
        )
        dispose(Disposal(stored=tuple(pfn for pfn in pfns if pfn not in shared)))
        # Their assignments (to this production's transformations or any other) cascade away.
        counters.count_removal(session, counters.FILE, TransformationFile.file_id.in_(ids))
        counters.record(session, counters.CATALOG, 0, counters.CATALOG_FILES, -len(ids))
        session.execute(
            delete(CatalogFile)
            .where(CatalogFile.id.in_([file_id for file_id, _ in chunk]))
            .execution_options(synchronize_session=False)
        )
        purged += len(chunk)


def _remove_execution_records(session: Session, production_id: int, dispose: Dispose, batch: int) -> int:
    """Tasks (their inputs and attempts cascade) a batch at a time, after their attempts'
    logs and work directories. A log holds the attempts of one job, all of one transformation;
    still, a log any attempt of another production names is kept."""
    shared = _shared_logs(session, production_id)
    removed = 0
    while True:
        task_ids = list(
            session.scalars(
                select(Task.id)
                .join(Transformation, Transformation.id == Task.transformation_id)
                .where(Transformation.production_id == production_id)
                .order_by(Task.id)
                .limit(batch)
            )
        )
        if not task_ids:
            return removed
        paths: set[str] = set()
        for log_path, workdir in session.execute(
            select(JobAttempt.log_path, JobAttempt.workdir).where(JobAttempt.task_id.in_(task_ids))
        ):
            if log_path and log_path not in shared:
                paths.add(log_path)
            if workdir:
                paths.add(workdir)
        if paths:
            dispose(Disposal(paths=tuple(sorted(paths))))
        session.execute(delete(Task).where(Task.id.in_(task_ids)).execution_options(synchronize_session=False))
        removed += len(task_ids)


def _shared_logs(session: Session, production_id: int) -> frozenset[str]:
    """Logs of the production's attempts that an attempt of another production also names (one query)."""
    ours_t, ours_a, ours_k = aliased(Transformation), aliased(JobAttempt), aliased(Task)
    ours = (
        select(ours_a.log_path)
        .join(ours_k, ours_k.id == ours_a.task_id)
        .join(ours_t, ours_t.id == ours_k.transformation_id)
        .where(ours_t.production_id == production_id, ours_a.log_path.is_not(None))
    )
    others: Sequence[str | None] = session.scalars(
        select(JobAttempt.log_path)
        .join(Task, Task.id == JobAttempt.task_id)
        .join(Transformation, Transformation.id == Task.transformation_id)
        .where(Transformation.production_id != production_id, JobAttempt.log_path.in_(ours))
        .distinct()
    ).all()
    return frozenset(path for path in others if path)
