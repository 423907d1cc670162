"""Finalize reported attempts: a successful report's outputs reach the catalog (checked
against the output query, all at once, with provenance) in the transaction that marks its
task Done and its inputs Processed; a failed one is retried or fails its task."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metaprod.core.errors import DomainError
from metaprod.core.metaquery import MetaQuery
from metaprod.core.outputs import output_metadata
from metaprod.core.statuses import AttemptStatus, FileStatus, TaskStatus
from metaprod.db import catalog, counters
from metaprod.db.jobs import (
    ATTEMPTS,
    QUEUED_TASKS,
    fail_attempt,
    held_by,
    transformations_of,
    update_attempts,
)
from metaprod.db.locking import claim
from metaprod.db.models import (
    FileMetadataValue,
    JobAttempt,
    MetadataField,
    Task,
    TaskInput,
    Transformation,
    TransformationFile,
    utcnow,
)
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session


@dataclass
class FinalizeSummary:
    done: int = 0
    failed: int = 0
    outputs: int = 0
    scratch: list[str] = field(default_factory=list)
    # Done tasks whose saved checkpoints go (their transformation does not keep_checkpoints).
    checkpoints: list[int] = field(default_factory=list)


def finalize_reported(*, session: Session, limit: int, backoff_base: float) -> FinalizeSummary:
    """Register the outputs of successful reports (all at once, with provenance) and mark
    their inputs Processed; fail the others. One transaction for the batch, set-based for
    the common case (a success): the rare failures go through `fail_attempt`."""
    summary = FinalizeSummary()
    attempts = session.execute(
        claim(  # type: ignore[type-var]
            session,
            select(JobAttempt.id, JobAttempt.task_id, JobAttempt.attempt, JobAttempt.report, JobAttempt.workdir)
            .where(JobAttempt.status == AttemptStatus.REPORTED.value)
            .order_by(JobAttempt.id)
            .limit(limit),
        )
    ).all()
    if not attempts:
        return summary
    task_ids = [a.task_id for a in attempts]
    tasks = {
        row.id: row
        for row in session.execute(
            select(Task.id, Task.attempt, Task.status, Task.transformation_id, Task.task_index).where(
                Task.id.in_(task_ids)
            )
        )
    }
    transformations, namespaces = transformations_of(session, {t.transformation_id for t in tasks.values()})
    input_md = _input_metadata(session, task_ids)
    schema = catalog.catalog_schema(session=session)
    done: list[tuple[int, int]] = []  # (attempt id, task id)
    superseded: list[tuple[int, str]] = []  # (attempt id, status)

    def fail(attempt_id: int, task_id: int, reason: str) -> None:
        task, attempt = session.get_one(Task, task_id), session.get_one(JobAttempt, attempt_id)
        fail_attempt(session=session, task=task, attempt=attempt, reason=reason, backoff_base=backoff_base)
        summary.failed += 1

    task_of = {a.id: a.task_id for a in attempts}
    for attempt_id, task_id, attempt, report, workdir in attempts:
        task = tasks[task_id]
        report = report or {}
        if workdir:
            summary.scratch.append(workdir)
        if task.attempt != attempt or task.status not in QUEUED_TASKS:
            status = AttemptStatus.KILLED if task.status == TaskStatus.KILLED else AttemptStatus.FAILED
            superseded.append((attempt_id, status.value))
            continue
        if not report.get("success"):
            fail(attempt_id, task_id, report.get("error") or f"job failed with exit code {report.get('exit_code')}")
            continue
        t = transformations[task.transformation_id]
        try:
            files = _outputs_to_register(
                task.task_index, t, namespaces[t.production_id], report, input_md.get(task_id, []), schema
            )
            if files:
                with session.begin_nested():
                    result = catalog.register_files(session=session, files=files, producer=(task_id, attempt))
                summary.outputs += result.registered
        except (DomainError, ValueError) as exc:
            fail(attempt_id, task_id, str(exc))
            continue
        done.append((attempt_id, task_id))
    now = utcnow()
    for attempt_id, outcome in superseded:
        counters.record(session, counters.ATTEMPT, tasks[task_of[attempt_id]].transformation_id, outcome, 1)
    for _, task_id in done:
        counters.record(session, counters.ATTEMPT, tasks[task_id].transformation_id, AttemptStatus.DONE.value, 1)
    if superseded:
        update_attempts(
            session,
            [attempt_id for attempt_id, _ in superseded],
            own={"status": dict(superseded)},
            error=func.coalesce(ATTEMPTS.c.error, "superseded: the task moved on before this report was finalized"),
        )
    if done:
        summary.done = len(done)
        session.execute(
            update(JobAttempt)
            .where(JobAttempt.id.in_([attempt_id for attempt_id, _ in done]))
            .values(status=AttemptStatus.DONE.value)
            .execution_options(synchronize_session=False)
        )
        done_tasks = Task.id.in_([task_id for _, task_id in done])
        if session.get_bind().dialect.name == "sqlite":
            # This transaction holds the write lock since it began: the statuses read above
            # are those the UPDATE changes (no counting query on the hot path).
            counters.record_moves(
                session,
                counters.TASK,
                [(tasks[i].transformation_id, tasks[i].status, TaskStatus.DONE.value, 1) for _, i in done],
            )
        else:
            counters.count_moves(session, counters.TASK, done_tasks, TaskStatus.DONE.value)
        session.execute(
            update(Task)
            .where(done_tasks)
            .values(status=TaskStatus.DONE.value, last_error=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    by_transformation: dict[int, list[int]] = {}
    for _, task_id in done:
        by_transformation.setdefault(tasks[task_id].transformation_id, []).append(task_id)
        if not (transformations[tasks[task_id].transformation_id].spec or {}).get("keep_checkpoints"):
            summary.checkpoints.append(task_id)
    for transformation_id, done_ids in sorted(by_transformation.items()):
        processed = session.execute(
            update(TransformationFile)
            .where(held_by(transformation_id, done_ids))
            .values(status=FileStatus.PROCESSED.value, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        counters.record_move(
            session, counters.FILE, transformation_id, FileStatus.ASSIGNED.value, FileStatus.PROCESSED.value, processed
        )
    session.flush()
    return summary


def _outputs_to_register(
    task_index: int,
    t: Transformation,
    namespace: str,
    report: Mapping[str, Any],
    inputs: list[dict[str, Any]],
    schema: Any,
) -> list[catalog.FileInput]:
    prefix = f"/{namespace}/{t.name}/{task_index:06d}/"
    query = MetaQuery.from_dict(t.output_query, schema=schema) if t.output_query is not None else None
    files: list[catalog.FileInput] = []
    for out in report.get("outputs") or []:
        if not str(out.get("lfn", "")).startswith(prefix):
            raise ValueError(f"output LFN {out.get('lfn')!r} is outside the task's namespace {prefix}")
        md = output_metadata(inputs, out.get("metadata") or {})
        if query is not None and not query.matches(md):
            raise ValueError(
                f"output {out['lfn']} has metadata {md} outside the output query {query.to_string()} "
                f"of transformation {t.name!r}"
            )
        files.append(
            catalog.FileInput(
                lfn=out["lfn"],
                pfn=out.get("pfn", ""),
                size=int(out.get("size", 0)),
                checksum=out.get("checksum", ""),
                metadata=md,
            )
        )
    return files


def _input_metadata(session: Session, task_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Metadata of every input of the given tasks, in task order, with one query."""
    rows = session.execute(
        select(
            TaskInput.task_id,
            TaskInput.position,
            MetadataField.name,
            FileMetadataValue.value_int,
            FileMetadataValue.value_float,
            FileMetadataValue.value_str,
        )
        .join(FileMetadataValue, FileMetadataValue.file_id == TaskInput.file_id)
        .join(MetadataField, MetadataField.id == FileMetadataValue.field_id)
        .where(TaskInput.task_id.in_(task_ids))
    )
    by_task: dict[int, dict[int, dict[str, Any]]] = {}
    for task_id, pos, name, vi, vf, vs in rows:
        value = vi if vi is not None else vf if vf is not None else vs
        by_task.setdefault(task_id, {}).setdefault(pos, {})[name] = value
    counts = dict(
        session.execute(  # type: ignore[arg-type]
            select(TaskInput.task_id, func.count()).where(TaskInput.task_id.in_(task_ids)).group_by(TaskInput.task_id)
        ).all()
    )
    return {tid: [by_task.get(tid, {}).get(pos, {}) for pos in range(n)] for tid, n in counts.items()}
