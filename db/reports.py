"""What job wrappers tell the system: heartbeats and reports of task attempts.

A job runs one task attempt or a bundle of them (one transformation's attempts one after the
other, sharing one worker token), so every call here takes a batch and costs a fixed number of
statements whatever its size. A worker token may only speak for the attempts that carry its
digest, checked in the same transaction as the write; a report counts only while its attempt
is live, so a late or duplicate report changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from metaprod.core.auth import Principal, reporting_token
from metaprod.core.errors import PermissionDenied
from metaprod.core.statuses import LIVE_ATTEMPT_STATUSES, AttemptStatus, TaskStatus, TransformationStatus
from metaprod.db import catalog, counters
from metaprod.db.jobs import update_attempts
from metaprod.db.models import JobAttempt, Task, Transformation, utcnow
from sqlalchemy import and_, delete, func, select, tuple_, update
from sqlalchemy.orm import Session

LIVE = frozenset(s.value for s in LIVE_ATTEMPT_STATUSES)


@dataclass(frozen=True)
class Beat:
    task_id: int
    attempt: int
    # Waiting its turn in a bundle: alive, but not started (the task stays Submitted).
    queued: bool = False
    # Its command runs, started under a start lease (see may_start): it becomes Running.
    started: bool = False


@dataclass(frozen=True)
class AttemptReport:
    task_id: int
    attempt: int
    success: bool
    error: str = ""
    exit_code: int = 0
    outputs: tuple[catalog.FileInput, ...] = ()


@dataclass(frozen=True)
class ReportOutcome:
    accepted: bool
    status: str


class _Row(NamedTuple):
    id: int
    status: str
    token_hash: str | None


def _attempt_rows(
    session: Session,
    keys: Sequence[tuple[int, int]],
    principal: Principal,
    *,
    missing_ok: bool = False,
    lock: bool = True,
) -> dict[tuple[int, int], _Row]:
    """The attempts named by `keys`, locked for this transaction (unless not `lock`), after
    checking that the caller may speak for every one of them (else nothing is changed). With
    `missing_ok`, an attempt without a row (withdrawn: see record_heartbeats) is left out
    instead of refused: nothing can be written for it anyway."""
    digest = reporting_token(principal)
    rows: dict[tuple[int, int], _Row] = {}
    if keys:
        wanted = set(keys)
        stmt = (
            select(JobAttempt.id, JobAttempt.task_id, JobAttempt.attempt, JobAttempt.status, JobAttempt.token_hash)
            .where(JobAttempt.task_id.in_({task for task, _ in keys}))
            .order_by(JobAttempt.id)
        )
        result = session.execute(stmt.with_for_update() if lock else stmt)
        for attempt_id, task_id, attempt, status, token_hash in result:
            if (task_id, attempt) in wanted:
                rows[(task_id, attempt)] = _Row(attempt_id, status, token_hash)
    if digest is not None:
        for task_id, attempt in keys:
            row = rows.get((task_id, attempt))
            if row is None and missing_ok:
                continue
            if row is None or row.token_hash != digest:
                raise PermissionDenied(f"token {principal.name!r} may not report on task {task_id} attempt {attempt}")
    return rows


class BeatOutcome(NamedTuple):
    proceed: bool  # still the live attempt: run (or go on running, or keep waiting)
    withdrawn: bool = False  # not started, given back to its task: never start it


def may_start(*, session: Session, keys: Sequence[tuple[int, int]], principal: Principal) -> bool:
    """Whether all these attempts may start now: each is live and not started, its task is
    Submitted (not Killed) with this attempt, and its transformation Active. Reads only (no
    lock, no write): what a start lease is granted on. The caller's clock started before this
    read, and a stop that commits after it returns only once the lease has run out (see
    metaprod.services.leases), so an attempt started within its lease started before the stop
    returned. False says nothing about which failed: record_heartbeats decides, with locks."""
    rows = _attempt_rows(session, keys, principal, missing_ok=True, lock=False)
    if not keys or len(rows) != len(set(keys)):
        return False
    if any(row.status != AttemptStatus.SUBMITTED.value for row in rows.values()):
        return False
    wanted = set(keys)
    states = session.execute(
        select(Task.id, Task.attempt, Task.status, Transformation.status)
        .join(Transformation, Transformation.id == Task.transformation_id)
        .where(Task.id.in_({task for task, _ in keys}))
    ).all()
    ready = {
        (task_id, attempt)
        for task_id, attempt, task_status, transformation_status in states
        if task_status == TaskStatus.SUBMITTED.value and transformation_status == TransformationStatus.ACTIVE.value
    }
    return wanted <= ready


def record_heartbeats(*, session: Session, beats: Sequence[Beat], principal: Principal) -> list[BeatOutcome]:
    """Note that these attempts are alive; for each, whether it is still the live attempt
    (proceed=False tells the wrapper to stop it, or not to start it).

    A `started` beat is an attempt whose command runs (started under a start lease): it
    becomes Running, and so does its task if still Submitted, whatever its transformation's
    status (a running attempt runs to its end; --kill is the monitor's). A beat neither
    `queued` nor `started` for an attempt not yet started is the wrapper asking to start it
    now: it starts (as above) if its task is still Submitted (not Killed) and its
    transformation Active. Stop means stop: an attempt not yet started (asked to start or
    still queued) of a transformation that is not Active is withdrawn: its row goes, its task
    is Created again with the attempt number it had before the claim (the attempt never
    counted), so a restart runs it with its whole budget. The transformation's status is read
    with a lock in this transaction, so a stop that committed first wins, and a start that
    committed first is an attempt already running at the stop, which runs to its end."""
    keys = [(b.task_id, b.attempt) for b in beats]
    rows = _attempt_rows(session, keys, principal, missing_ok=True)
    live = {key: row for key, row in rows.items() if row.status in LIVE}
    not_started = {key for key, row in live.items() if row.status == AttemptStatus.SUBMITTED.value}
    checked = {key for beat, key in zip(beats, keys, strict=True) if key in not_started and not beat.started}
    # Locking reads (latest committed on MariaDB, not the snapshot): they order this
    # transaction against `stop` (which updates the transformation) and `--kill` (the tasks).
    # Only beats that might start or withdraw an attempt need them.
    task_states: dict[int, tuple[str, str]] = {}
    if checked:
        task_states = {
            task_id: (task_status, transformation_status)
            for task_id, task_status, transformation_status in session.execute(
                select(Task.id, Task.status, Transformation.status)
                .join(Transformation, Transformation.id == Task.transformation_id)
                .where(Task.id.in_({task for task, _ in checked}))
                .with_for_update(read=True)
            )
        }
    outcomes: dict[tuple[int, int], BeatOutcome] = {}
    started: list[tuple[int, int]] = []
    alive: list[int] = []
    withdrawn: list[tuple[int, int]] = []
    for beat, key in zip(beats, keys, strict=True):
        if key in outcomes:
            continue
        row = live.get(key)
        if row is None:
            outcomes[key] = BeatOutcome(False)
            continue
        if key in checked:
            task_status, transformation_status = task_states[key[0]]
            if task_status != TaskStatus.SUBMITTED.value:
                outcomes[key] = BeatOutcome(False)  # killed: the monitor ends the attempt
                continue
            if transformation_status != TransformationStatus.ACTIVE.value:
                withdrawn.append(key)
                outcomes[key] = BeatOutcome(False, withdrawn=True)
                continue
        outcomes[key] = BeatOutcome(True)
        if beat.queued and not beat.started:
            alive.append(row.id)
        else:
            started.append(key)
    now = utcnow()
    if started:
        session.execute(
            update(JobAttempt)
            .where(JobAttempt.id.in_([live[key].id for key in started]))
            .values(
                status=AttemptStatus.RUNNING.value,
                heartbeat_at=now,
                started_at=func.coalesce(JobAttempt.started_at, now),
            )
            .execution_options(synchronize_session=False)
        )
        starting = and_(tuple_(Task.id, Task.attempt).in_(started), Task.status == TaskStatus.SUBMITTED.value)
        counters.count_moves(session, counters.TASK, starting, TaskStatus.RUNNING.value)
        session.execute(
            update(Task)
            .where(starting)
            .values(status=TaskStatus.RUNNING.value)
            .execution_options(synchronize_session=False)
        )
    if alive:
        session.execute(
            update(JobAttempt)
            .where(JobAttempt.id.in_(alive))
            .values(heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
    if withdrawn:
        _withdraw(session, withdrawn, [live[key].id for key in withdrawn], now)
    return [outcomes[key] for key in keys]


def _withdraw(session: Session, keys: list[tuple[int, int]], attempt_ids: list[int], now: datetime) -> None:
    """Give attempts that never started back to their tasks, as if never claimed (their rows
    go, so the attempt number is free for the next claim). A job's scratch is recorded on its
    last attempt: when that one is withdrawn, the wrapper removes the job's directory itself
    (see metaprod.agents.wrapper)."""
    session.execute(
        delete(JobAttempt).where(JobAttempt.id.in_(attempt_ids)).execution_options(synchronize_session=False)
    )
    back = and_(tuple_(Task.id, Task.attempt).in_(keys), Task.status == TaskStatus.SUBMITTED.value)
    counters.count_moves(session, counters.TASK, back, TaskStatus.CREATED.value)
    session.execute(
        update(Task)
        .where(back)
        .values(
            status=TaskStatus.CREATED.value,
            attempt=Task.attempt - 1,
            backend_job_id=None,
            not_before=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


def report_attempts(*, session: Session, reports: Sequence[AttemptReport], principal: Principal) -> list[ReportOutcome]:
    """Keep jobs' reports for the finalize agent (one UPDATE for the batch). A report of a
    superseded, killed or already reported attempt changes nothing (accepted=False, with the
    attempt's status)."""
    keys = [(r.task_id, r.attempt) for r in reports]
    rows = _attempt_rows(session, keys, principal)
    now = utcnow()
    taken: set[tuple[int, int]] = set()
    stored: dict[int, Mapping[str, Any]] = {}
    exit_codes: dict[int, int] = {}
    outcomes: list[ReportOutcome] = []
    for report, key in zip(reports, keys, strict=True):
        row = rows.get(key)
        if key in taken:  # the same report twice in one call counts once
            outcomes.append(ReportOutcome(False, AttemptStatus.REPORTED.value))
        elif row is None or row.status not in LIVE:
            outcomes.append(ReportOutcome(False, row.status if row else "Unknown"))
        else:
            taken.add(key)
            outcomes.append(ReportOutcome(True, AttemptStatus.REPORTED.value))
            stored[row.id], exit_codes[row.id] = _stored(report), report.exit_code
    if stored:
        update_attempts(
            session,
            list(stored),
            status=AttemptStatus.REPORTED.value,
            own={"report": stored, "exit_code": exit_codes},
            finished_at=now,
        )
    return outcomes


def _stored(report: AttemptReport) -> Mapping[str, Any]:
    return {
        "success": report.success,
        "error": report.error[:4000],
        "exit_code": report.exit_code,
        "outputs": [
            {"lfn": o.lfn, "pfn": o.pfn, "size": o.size, "checksum": o.checksum, "metadata": dict(o.metadata)}
            for o in report.outputs
        ],
    }
