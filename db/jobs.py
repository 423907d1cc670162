"""Job attempts, exactly once: claim Created tasks, plan and record their jobs, end lost or
killed attempts, fail or retry them. Reports are taken in `reports`, finalized in `finalize`.

Exactly once rests on three rules: a task's work is claimed under a row lock (or SQLite's
write lock); a report counts only while its attempt is the task's live attempt; outputs
reach the catalog only in the transaction that marks the task Done.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from metaprod.core.auth import hash_secret, new_secret
from metaprod.core.outputs import backoff_seconds
from metaprod.core.statuses import (
    LIVE_ATTEMPT_STATUSES,
    AttemptStatus,
    FileStatus,
    TaskStatus,
    TransformationStatus,
)
from metaprod.db import counters, events, reuse
from metaprod.db.bulk import update_rows
from metaprod.db.locking import claim
from metaprod.db.models import (
    CatalogFile,
    JobAttempt,
    Production,
    Task,
    TaskInput,
    Transformation,
    TransformationFile,
    utcnow,
)
from sqlalchemy import Table, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

LIVE = [s.value for s in LIVE_ATTEMPT_STATUSES]
QUEUED_TASKS = [TaskStatus.SUBMITTED.value, TaskStatus.RUNNING.value]
ATTEMPTS = cast(Table, JobAttempt.__table__)
TASKS = cast(Table, Task.__table__)


def update_attempts(
    session: Session, ids: Collection[int], *, own: Mapping[str, Mapping[int, Any]] | None = None, **same: Any
) -> None:
    """Update these job attempts in one statement (per thousand): `own` values by attempt id,
    `same` for all (see metaprod.db.bulk.update_rows)."""
    update_rows(session, ATTEMPTS, ids, own=own, **same)


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
    max_runtime: int | None = None  # seconds; past it the wrapper kills the attempt
    namespace: str = ""  # the first segment of its output LFNs (output_namespaces)
    env: Mapping[str, str] = field(default_factory=dict)  # the spec's env: (docs/jobs.md)
    max_output_bytes: int | None = None

    @property
    def lfn_prefix(self) -> str:
        return f"/{self.namespace or self.production}/{self.transformation}/{self.task_index:06d}/"


def claim_tasks(
    *,
    session: Session,
    limit: int,
    max_queued_per_backend: Mapping[str, int],
    max_queued_per_transformation: int = 0,
    own_queued: Mapping[str, int] | None = None,
    reused: list[int] | None = None,
) -> list[ClaimedJob]:
    """Turn up to `limit` due Created tasks into Submitted attempts, within the caps. Those
    that reuse a Done task's outputs instead (metaprod.db.reuse) are Done: their ids are
    added to `reused`. `own_queued`: for backends whose queue belongs to the calling process
    (the local pool of one agents process), the attempts queued there, which its cap applies
    to instead of the count of every process's attempts."""
    now = utcnow()
    # Queued: attempts handed to a backend that have not reported. A reported attempt has
    # left its backend, though its task stays Submitted or Running until it is finalized:
    # counting it would let the finalize agent's pace starve a fast backend.
    queued: dict[str, int] = {}
    per_transformation: dict[int, int] = {}
    for backend, transformation_id, count in session.execute(
        select(JobAttempt.backend, Task.transformation_id, func.count())
        .join(Task, Task.id == JobAttempt.task_id)
        .where(JobAttempt.status.in_(LIVE))
        .group_by(JobAttempt.backend, Task.transformation_id)
    ):
        queued[backend] = queued.get(backend, 0) + count
        per_transformation[transformation_id] = per_transformation.get(transformation_id, 0) + count
    # The Active transformations first (held, as a join's FOR UPDATE held them: one another
    # agent holds is skipped), then their tasks by a scan of one index: joined, MariaDB read
    # every task of each Active transformation and sorted them (seconds at a million).
    active = list(
        session.scalars(
            claim(session, select(Transformation.id).where(Transformation.status == TransformationStatus.ACTIVE.value))
        )
    )
    if not active:
        return []
    # Plain rows first (cheap, only what the caps need), then the chosen tasks' own.
    candidates = session.execute(
        claim(  # type: ignore[type-var]
            session,
            select(Task.id, Task.backend, Task.transformation_id)
            .with_hint(Task, "FORCE INDEX (ix_tasks_status_index)", "mysql")
            .with_hint(Task, "FORCE INDEX (ix_tasks_status_index)", "mariadb")
            .where(
                Task.status == TaskStatus.CREATED.value,
                Task.transformation_id.in_(active),
                or_(Task.not_before.is_(None), Task.not_before <= now),
            )
            # By task_index, not id: every transformation's lowest-indexed Created tasks come
            # first, so a small production started while a root of millions is created (ids
            # after millions of Created ones) is claimed at once, not after all of them; the
            # transformations in progress advance side by side (ix_tasks_status_index).
            .order_by(Task.task_index, Task.id)
            .limit(limit * 4),
        )
    ).all()
    chosen_ids: list[int] = []
    chosen_transformations: set[int] = set()
    caps: dict[str, int] = {}
    for task_id, backend, transformation_id in candidates:
        if backend not in caps:
            caps[backend] = max_queued_per_backend.get(backend, 0)
            if own_queued is not None and backend in own_queued:
                queued[backend] = own_queued[backend]
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
        chosen_transformations.add(transformation_id)
        if len(chosen_ids) >= limit:
            break
    if not chosen_ids:
        return []
    transformations, namespaces = transformations_of(session, chosen_transformations)
    # Plain rows and set-based writes: ORM objects would cost more than the rest of a claim.
    chosen = session.execute(
        select(Task.id, Task.task_index, Task.attempt + 1, Task.backend, Task.transformation_id, Task.signature)
        .where(Task.id.in_(chosen_ids))
        .order_by(Task.id)
    ).all()
    # Reuse by content: a chosen task whose signature is that of a Done task takes its outputs
    # and is Done now, without an attempt (one lookup for the batch; none when no chosen
    # task's transformation reuses, as for roots, which opt in).
    taken = set(
        reuse.reuse_done(
            session=session,
            candidates=[
                reuse.Candidate(row[0], row[1], row[4], row[5])
                for row in chosen
                if row[5] is not None and reuse.reuses(transformations[row[4]])
            ],
            transformations=transformations,
            namespaces=namespaces,
        )
    )
    if taken:
        if reused is not None:
            reused.extend(sorted(taken))
        chosen = [row for row in chosen if row[0] not in taken]
        chosen_ids = [row[0] for row in chosen]
        if not chosen_ids:
            return []
    production_names = production_names_of(namespaces)
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
    # The chosen tasks are Created and held by this claim (locked): their moves are known.
    submitted: dict[int, int] = {}
    for row in chosen:
        submitted[row.transformation_id] = submitted.get(row.transformation_id, 0) + 1
    for transformation_id, n in sorted(submitted.items()):
        counters.record_move(
            session, counters.TASK, transformation_id, TaskStatus.CREATED.value, TaskStatus.SUBMITTED.value, n
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
            for task_id, _, attempt, backend, _, _ in chosen
        ],
    )
    attempt_ids: dict[tuple[int, int], int] = {
        (tid, n): aid
        for aid, tid, n in session.execute(
            select(JobAttempt.id, JobAttempt.task_id, JobAttempt.attempt).where(JobAttempt.task_id.in_(chosen_ids))
        )
    }
    claimed: list[ClaimedJob] = []
    for task_id, task_index, attempt, backend, transformation_id, _ in chosen:
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
                namespace=namespaces[t.production_id],
                transformation=t.name,
                command=t.command,
                outputs=list((t.output_metadata or {}).get("outputs") or []),
                inputs=tuple(inputs.get(task_id, ())),
                max_runtime=t.max_runtime,
                env=dict(t.spec.get("env") or {}),
                max_output_bytes=t.spec.get("max_output_bytes"),
            )
        )
    return claimed


def transformations_of(
    session: Session, transformation_ids: set[int]
) -> tuple[dict[int, Transformation], dict[int, str]]:
    """These transformations by id, and the output namespaces of their productions by
    production id (see output_namespaces)."""
    transformations = {
        t.id: t for t in session.scalars(select(Transformation).where(Transformation.id.in_(transformation_ids)))
    }
    return transformations, output_namespaces(session, {t.production_id for t in transformations.values()})


def output_namespaces(session: Session, production_ids: set[int]) -> dict[int, str]:
    """The first segment of the LFNs a production's tasks write, chosen when it was created
    (db.namespaces): its name, or `name@N` when that was taken ('@' is never part of a name)."""
    rows = session.execute(
        select(Production.id, Production.name, Production.namespace).where(Production.id.in_(production_ids))
    )
    return {pid: namespace or name for pid, name, namespace in rows}


def production_names_of(namespaces: Mapping[int, str]) -> dict[int, str]:
    return {pid: namespace.split("@", 1)[0] for pid, namespace in namespaces.items()}


@dataclass(frozen=True)
class PlannedAttempt:
    attempt_id: int
    scratch: str | None  # removed once the attempt is finalized
    log_path: str


def record_job_plans(*, session: Session, plans: Sequence[Sequence[PlannedAttempt]]) -> list[str | None]:
    """Record how claimed attempts are run: each plan is one job. The attempts of a job of
    several (a bundle) get one new shared worker token, whose secret is returned (None for a
    job of one, which keeps its own); their own tokens, never handed out, stop being valid.
    Two UPDATEs for all."""
    secrets: list[str | None] = []
    scratch: dict[int, str | None] = {}
    logs: dict[int, str] = {}
    bundled: dict[int, str] = {}  # the shared token's digest; a job of one keeps its own token
    for plan in plans:
        secret = new_secret() if len(plan) > 1 else None
        secrets.append(secret)
        digest = secret and hash_secret(secret)
        for p in plan:
            scratch[p.attempt_id], logs[p.attempt_id] = p.scratch, p.log_path
            if digest:
                bundled[p.attempt_id] = digest
    update_attempts(session, list(scratch), own={"workdir": scratch, "log_path": logs})
    update_attempts(session, list(bundled), own={"token_hash": bundled})
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
    """Record the backend jobs of a batch of claimed attempts (two UPDATEs)."""
    if not submissions:
        return
    jobs = {s.attempt_id: s.backend_job_id for s in submissions}
    keys = session.execute(
        select(JobAttempt.id, JobAttempt.task_id, JobAttempt.attempt).where(JobAttempt.id.in_(list(jobs)))
    ).all()
    update_attempts(session, list(jobs), own={"backend_job_id": jobs})
    # Each task has one attempt in a batch; a task no longer on it is left alone.
    update_rows(
        session,
        TASKS,
        [task_id for _, task_id, _ in keys],
        own={"backend_job_id": {task_id: jobs[aid] for aid, task_id, _ in keys}},
        match={"attempt": {task_id: n for _, task_id, n in keys}},
    )


def held_by(transformation_id: int, task_ids: list[int]) -> ColumnElement[bool]:
    """The Assigned files of a transformation that these tasks (all of it) hold."""
    return and_(
        TransformationFile.transformation_id == transformation_id,
        TransformationFile.status == FileStatus.ASSIGNED.value,
        TransformationFile.file_id.in_(select(TaskInput.file_id).where(TaskInput.task_id.in_(task_ids))),
    )


def fail_attempt(
    *,
    session: Session,
    task: Task,
    attempt: JobAttempt,
    reason: str,
    backoff_base: float,
    status: AttemptStatus = AttemptStatus.FAILED,
    actor: str = "finalize",
) -> None:
    """Record a failed attempt; retry with backoff, or fail the task and its files (an event
    in the production's history, by `agent:<actor>`)."""
    now = utcnow()
    attempt.status, attempt.error = status.value, reason[:4000]
    counters.record(session, counters.ATTEMPT, task.transformation_id, status.value, 1)
    attempt.finished_at = attempt.finished_at or now
    task.last_error = f"attempt {attempt.attempt}: {reason}"[:4000]
    # session.get answers from the identity map when the caller already loaded the
    # transformation (finalize does, for its whole batch): no query per failed attempt.
    transformation = session.get_one(Transformation, task.transformation_id)
    files = update(TransformationFile).where(held_by(task.transformation_id, [task.id]))
    # Attempts before the last `retry` do not count: a retry gives a fresh budget.
    if task.attempt - task.attempts_base >= (transformation.max_attempts or 1):
        task.status = TaskStatus.FAILED.value
        events.record(
            session=session,
            actor=events.agent_actor(actor),
            production_id=transformation.production_id,
            event="task_failed",
            transformation=transformation.name,
            detail=f"task {task.id}: {task.last_error}",
        )
        problematic = session.execute(
            files.values(
                status=FileStatus.PROBLEMATIC.value, error_count=TransformationFile.error_count + 1, updated_at=now
            ).execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        counters.record_move(
            session,
            counters.FILE,
            task.transformation_id,
            FileStatus.ASSIGNED.value,
            FileStatus.PROBLEMATIC.value,
            problematic,
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
    started_at: datetime | None = None
    max_runtime: int | None = None  # the transformation's, in seconds
    scratch: str | None = None  # removed once the attempt has ended


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
            JobAttempt.started_at,
            Transformation.max_runtime,
            JobAttempt.workdir,
        )
        .join(Task, Task.id == JobAttempt.task_id)
        .join(Transformation, Transformation.id == Task.transformation_id)
        .where(JobAttempt.status.in_(LIVE))
        .order_by(JobAttempt.id)
    )
    return [
        LiveAttempt(aid, tid, n, backend, job_id, sub, hb, status == TaskStatus.KILLED.value, started, limit, scratch)
        for aid, tid, n, backend, job_id, sub, hb, status, started, limit, scratch in rows
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
        counters.record(session, counters.ATTEMPT, task.transformation_id, status.value, 1)
        session.flush()
        return True
    fail_attempt(
        session=session,
        task=task,
        attempt=attempt,
        reason=reason,
        backoff_base=backoff_base,
        status=status,
        actor="monitor",
    )
    return True
