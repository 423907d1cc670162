"""Job attempts, exactly once: claim Created tasks, record submissions and heartbeats, take
reports (idempotent, tied to their attempt), finalize outputs, fail or retry attempts.

Exactly once rests on three rules: a task's work is claimed under a row lock (or SQLite's
write lock); a report counts only while its attempt is the task's live attempt; outputs
reach the catalog only in the transaction that marks the task Done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from metaprod.core.auth import hash_secret, new_secret
from metaprod.core.errors import DomainError
from metaprod.core.metaquery import MetaQuery
from metaprod.core.outputs import backoff_seconds, output_metadata
from metaprod.core.statuses import (
    LIVE_ATTEMPT_STATUSES,
    AttemptStatus,
    FileStatus,
    TaskStatus,
    TransformationStatus,
)
from metaprod.db import catalog
from metaprod.db.locking import claim
from metaprod.db.models import (
    CatalogFile,
    FileMetadataValue,
    JobAttempt,
    MetadataField,
    Production,
    Task,
    TaskInput,
    Transformation,
    TransformationFile,
    utcnow,
)
from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

LIVE = [s.value for s in LIVE_ATTEMPT_STATUSES]
QUEUED_TASKS = [TaskStatus.SUBMITTED.value, TaskStatus.RUNNING.value]
ATTEMPTS = JobAttempt.__table__


def update_attempts_by_id(session: Session, params: Sequence[Mapping[str, Any]], **values: Any) -> None:
    """One executemany UPDATE of job attempts, each parameter set naming its attempt as `b_id`."""
    if params:
        session.connection().execute(
            update(ATTEMPTS).where(ATTEMPTS.c.id == bindparam("b_id")).values(**values),  # type: ignore[arg-type]
            params,
        )


@dataclass(frozen=True)
class JobInput:
    lfn: str
    pfn: str


@dataclass(frozen=True)
class ClaimedJob:
    task_id: int
    task_index: int
    attempt: int
    attempt_id: int
    secret: str
    backend: str
    backend_options: Mapping[str, Any]
    production: str
    transformation: str
    command: str
    outputs: Sequence[Mapping[str, Any]]
    inputs: tuple[JobInput, ...]

    @property
    def lfn_prefix(self) -> str:
        return f"/{self.production}/{self.transformation}/{self.task_index:06d}/"


def claim_tasks(
    *,
    session: Session,
    limit: int,
    max_queued_per_backend: Mapping[str, int],
    max_queued_per_transformation: int = 0,
) -> list[ClaimedJob]:
    """Turn up to `limit` due Created tasks into Submitted attempts, within the caps."""
    now = utcnow()
    queued = dict(
        session.execute(  # type: ignore[arg-type]
            select(Task.backend, func.count()).where(Task.status.in_(QUEUED_TASKS)).group_by(Task.backend)
        ).all()
    )
    per_transformation: dict[int, int] = dict(
        session.execute(  # type: ignore[arg-type]
            select(Task.transformation_id, func.count())
            .where(Task.status.in_(QUEUED_TASKS))
            .group_by(Task.transformation_id)
        ).all()
    )
    # Plain rows first (cheap), then ORM objects for the chosen tasks only.
    candidates = session.execute(
        claim(  # type: ignore[type-var]
            session,
            select(Task.id, Task.backend, Task.transformation_id)
            .join(Transformation, Transformation.id == Task.transformation_id)
            .where(
                Task.status == TaskStatus.CREATED.value,
                Transformation.status == TransformationStatus.ACTIVE.value,
                or_(Task.not_before.is_(None), Task.not_before <= now),
            )
            .order_by(Task.id)
            .limit(limit * 4),
        )
    ).all()
    chosen_ids: list[int] = []
    caps: dict[str, int] = {}
    for task_id, backend, transformation_id in candidates:
        if backend not in caps:
            caps[backend] = max_queued_per_backend.get(backend, 0)
        cap = caps[backend]
        if cap and queued.get(backend, 0) >= cap:
            continue
        if (
            max_queued_per_transformation
            and per_transformation.get(transformation_id, 0) >= max_queued_per_transformation
        ):
            continue
        queued[backend] = queued.get(backend, 0) + 1
        per_transformation[transformation_id] = per_transformation.get(transformation_id, 0) + 1
        chosen_ids.append(task_id)
        if len(chosen_ids) >= limit:
            break
    if not chosen_ids:
        return []
    # Plain rows and set-based writes: ORM objects would cost more than the rest of a claim.
    chosen = session.execute(
        select(Task.id, Task.task_index, Task.attempt + 1, Task.backend, Task.transformation_id)
        .where(Task.id.in_(chosen_ids))
        .order_by(Task.id)
    ).all()
    transformations = {
        t.id: t
        for t in session.scalars(
            select(Transformation).where(Transformation.id.in_({row.transformation_id for row in chosen}))
        )
    }
    production_names = dict(
        session.execute(  # type: ignore[arg-type]
            select(Production.id, Production.name).where(
                Production.id.in_({t.production_id for t in transformations.values()})
            )
        ).all()
    )
    inputs = _inputs_of(session, chosen_ids)
    session.execute(
        update(Task)
        .where(Task.id.in_(chosen_ids))
        .values(
            attempt=Task.attempt + 1,
            status=TaskStatus.SUBMITTED.value,
            not_before=None,
            backend_job_id=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    secrets = {task_id: new_secret() for task_id in chosen_ids}
    # One multi-row insert for the batch, then the ids by (task, attempt) in one query.
    session.execute(
        insert(JobAttempt),
        [
            {
                "task_id": task_id,
                "attempt": attempt,
                "status": AttemptStatus.SUBMITTED.value,
                "backend": backend,
                "token_hash": hash_secret(secrets[task_id]),
                "submitted_at": now,
            }
            for task_id, _, attempt, backend, _ in chosen
        ],
    )
    attempt_ids: dict[tuple[int, int], int] = {
        (tid, n): aid
        for aid, tid, n in session.execute(
            select(JobAttempt.id, JobAttempt.task_id, JobAttempt.attempt).where(JobAttempt.task_id.in_(chosen_ids))
        )
    }
    claimed: list[ClaimedJob] = []
    for task_id, task_index, attempt, backend, transformation_id in chosen:
        t = transformations[transformation_id]
        claimed.append(
            ClaimedJob(
                task_id=task_id,
                task_index=task_index,
                attempt=attempt,
                attempt_id=attempt_ids[(task_id, attempt)],
                secret=secrets[task_id],
                backend=backend,
                backend_options=dict(t.spec.get("options") or {}),
                production=production_names[t.production_id],
                transformation=t.name,
                command=t.command,
                outputs=list((t.output_metadata or {}).get("outputs") or []),
                inputs=tuple(inputs.get(task_id, ())),
            )
        )
    return claimed


@dataclass(frozen=True)
class PlannedAttempt:
    attempt_id: int
    scratch: str | None  # removed once the attempt is finalized
    log_path: str


def record_job_plans(*, session: Session, plans: Sequence[Sequence[PlannedAttempt]]) -> list[str | None]:
    """Record how claimed attempts are run: each plan is one job. The attempts of a job of
    several (a bundle) get one new shared worker token, whose secret is returned (None for a
    job of one, which keeps its own); their own tokens, never handed out, stop being valid.
    One executemany UPDATE for all."""
    secrets: list[str | None] = []
    params: list[dict[str, Any]] = []
    for plan in plans:
        secret = new_secret() if len(plan) > 1 else None
        secrets.append(secret)
        params.extend(
            {
                "b_id": p.attempt_id,
                "b_scratch": p.scratch,
                "b_log": p.log_path,
                "b_token": secret and hash_secret(secret),
            }
            for p in plan
        )
    update_attempts_by_id(
        session,
        params,
        workdir=bindparam("b_scratch"),
        log_path=bindparam("b_log"),
        token_hash=func.coalesce(bindparam("b_token", type_=ATTEMPTS.c.token_hash.type), ATTEMPTS.c.token_hash),
    )
    return secrets


def _inputs_of(session: Session, task_ids: list[int]) -> dict[int, list[JobInput]]:
    result: dict[int, list[JobInput]] = {}
    rows = session.execute(
        select(TaskInput.task_id, CatalogFile.lfn, CatalogFile.pfn)
        .join(CatalogFile, CatalogFile.id == TaskInput.file_id)
        .where(TaskInput.task_id.in_(task_ids))
        .order_by(TaskInput.task_id, TaskInput.position)
    )
    for task_id, lfn, pfn in rows:
        result.setdefault(task_id, []).append(JobInput(lfn, pfn))
    return result


@dataclass(frozen=True)
class Submission:
    attempt_id: int
    backend_job_id: str


def record_submissions(*, session: Session, submissions: Sequence[Submission]) -> None:
    """Record the backend jobs of a batch of claimed attempts (two executemany UPDATEs)."""
    if not submissions:
        return
    by_id = {s.attempt_id: s for s in submissions}
    keys = session.execute(
        select(JobAttempt.id, JobAttempt.task_id, JobAttempt.attempt).where(JobAttempt.id.in_(list(by_id)))
    ).all()
    conn = session.connection()
    update_attempts_by_id(
        session,
        [{"b_id": s.attempt_id, "b_job": s.backend_job_id} for s in submissions],
        backend_job_id=bindparam("b_job"),
    )
    tasks = Task.__table__
    conn.execute(
        update(tasks)  # type: ignore[arg-type]
        .where(tasks.c.id == bindparam("b_task"), tasks.c.attempt == bindparam("b_attempt"))
        .values(backend_job_id=bindparam("b_job")),
        [{"b_task": tid, "b_attempt": n, "b_job": by_id[aid].backend_job_id} for aid, tid, n in keys],
    )


@dataclass
class FinalizeSummary:
    done: int = 0
    failed: int = 0
    outputs: int = 0
    scratch: list[str] = field(default_factory=list)


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
    transformations = {
        t.id: t
        for t in session.scalars(
            select(Transformation).where(Transformation.id.in_({t.transformation_id for t in tasks.values()}))
        )
    }
    production_names = dict(
        session.execute(  # type: ignore[arg-type]
            select(Production.id, Production.name).where(
                Production.id.in_({t.production_id for t in transformations.values()})
            )
        ).all()
    )
    input_md = _input_metadata(session, task_ids)
    schema = catalog.catalog_schema(session=session)
    done: list[tuple[int, int]] = []  # (attempt id, task id)
    superseded: list[tuple[int, str]] = []  # (attempt id, status)

    def fail(attempt_id: int, task_id: int, reason: str) -> None:
        task, attempt = session.get_one(Task, task_id), session.get_one(JobAttempt, attempt_id)
        fail_attempt(session=session, task=task, attempt=attempt, reason=reason, backoff_base=backoff_base)
        summary.failed += 1

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
                task.task_index, t, production_names[t.production_id], report, input_md.get(task_id, []), schema
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
    update_attempts_by_id(
        session,
        [{"b_id": attempt_id, "b_status": status} for attempt_id, status in superseded],
        status=bindparam("b_status"),
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
        session.execute(
            update(Task)
            .where(Task.id.in_([task_id for _, task_id in done]))
            .values(status=TaskStatus.DONE.value, last_error=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    by_transformation: dict[int, list[int]] = {}
    for _, task_id in done:
        by_transformation.setdefault(tasks[task_id].transformation_id, []).append(task_id)
    for transformation_id, done_ids in by_transformation.items():
        session.execute(
            update(TransformationFile)
            .where(held_by(transformation_id, done_ids))
            .values(status=FileStatus.PROCESSED.value, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    session.flush()
    return summary


def held_by(transformation_id: int, task_ids: list[int]) -> ColumnElement[bool]:
    """The Assigned files of a transformation that these tasks (all of it) hold."""
    return and_(
        TransformationFile.transformation_id == transformation_id,
        TransformationFile.status == FileStatus.ASSIGNED.value,
        TransformationFile.file_id.in_(select(TaskInput.file_id).where(TaskInput.task_id.in_(task_ids))),
    )


def _outputs_to_register(
    task_index: int,
    t: Transformation,
    production: str,
    report: Mapping[str, Any],
    inputs: list[dict[str, Any]],
    schema: Any,
) -> list[catalog.FileInput]:
    prefix = f"/{production}/{t.name}/{task_index:06d}/"
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


def fail_attempt(
    *,
    session: Session,
    task: Task,
    attempt: JobAttempt,
    reason: str,
    backoff_base: float,
    status: AttemptStatus = AttemptStatus.FAILED,
) -> None:
    """Record a failed attempt; retry with backoff, or fail the task and its files."""
    now = utcnow()
    attempt.status, attempt.error = status.value, reason[:4000]
    attempt.finished_at = attempt.finished_at or now
    task.last_error = f"attempt {attempt.attempt}: {reason}"[:4000]
    # session.get answers from the identity map when the caller already loaded the
    # transformation (finalize does, for its whole batch): no query per failed attempt.
    max_attempts = session.get_one(Transformation, task.transformation_id).max_attempts or 1
    files = update(TransformationFile).where(held_by(task.transformation_id, [task.id]))
    if task.attempt >= max_attempts:
        task.status = TaskStatus.FAILED.value
        session.execute(
            files.values(
                status=FileStatus.PROBLEMATIC.value, error_count=TransformationFile.error_count + 1, updated_at=now
            ).execution_options(synchronize_session=False)
        )
    else:
        task.status = TaskStatus.CREATED.value
        task.not_before = now + timedelta(seconds=backoff_seconds(task.attempt, backoff_base))
        session.execute(
            files.values(error_count=TransformationFile.error_count + 1, updated_at=now).execution_options(
                synchronize_session=False
            )
        )
    session.flush()


@dataclass(frozen=True)
class LiveAttempt:
    attempt_id: int
    task_id: int
    attempt: int
    backend: str
    backend_job_id: str | None
    submitted_at: datetime | None
    heartbeat_at: datetime | None
    task_killed: bool


def live_attempts(*, session: Session) -> list[LiveAttempt]:
    rows = session.execute(
        select(
            JobAttempt.id,
            JobAttempt.task_id,
            JobAttempt.attempt,
            JobAttempt.backend,
            JobAttempt.backend_job_id,
            JobAttempt.submitted_at,
            JobAttempt.heartbeat_at,
            Task.status,
        )
        .join(Task, Task.id == JobAttempt.task_id)
        .where(JobAttempt.status.in_(LIVE))
        .order_by(JobAttempt.id)
    )
    return [
        LiveAttempt(aid, tid, n, backend, job_id, sub, hb, status == TaskStatus.KILLED.value)
        for aid, tid, n, backend, job_id, sub, hb, status in rows
    ]


def end_attempt(*, session: Session, attempt_id: int, reason: str, backoff_base: float, status: AttemptStatus) -> bool:
    """Lost or killed: end a live attempt (and retry its task when it was lost)."""
    attempt = session.scalars(
        claim(session, select(JobAttempt).where(JobAttempt.id == attempt_id, JobAttempt.status.in_(LIVE)))
    ).first()
    if attempt is None:
        return False
    task = session.get_one(Task, attempt.task_id)
    if status is AttemptStatus.KILLED or task.attempt != attempt.attempt:
        attempt.status, attempt.error, attempt.finished_at = status.value, reason, utcnow()
        session.flush()
        return True
    fail_attempt(session=session, task=task, attempt=attempt, reason=reason, backoff_base=backoff_base, status=status)
    return True
