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
from typing import Any, NamedTuple

from metaprod.core.auth import Principal, reporting_token
from metaprod.core.errors import PermissionDenied
from metaprod.core.statuses import LIVE_ATTEMPT_STATUSES, AttemptStatus, TaskStatus
from metaprod.db import catalog
from metaprod.db.jobs import update_attempts
from metaprod.db.models import JobAttempt, Task, utcnow
from sqlalchemy import func, select, tuple_, update
from sqlalchemy.orm import Session

LIVE = frozenset(s.value for s in LIVE_ATTEMPT_STATUSES)


@dataclass(frozen=True)
class Beat:
    task_id: int
    attempt: int
    # Waiting its turn in a bundle: alive, but not started (the task stays Submitted).
    queued: bool = False


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
    session: Session, keys: Sequence[tuple[int, int]], principal: Principal
) -> dict[tuple[int, int], _Row]:
    """The attempts named by `keys`, locked for this transaction, after checking that the
    caller may speak for every one of them (else nothing is changed)."""
    digest = reporting_token(principal)
    rows: dict[tuple[int, int], _Row] = {}
    if keys:
        wanted = set(keys)
        result = session.execute(
            select(JobAttempt.id, JobAttempt.task_id, JobAttempt.attempt, JobAttempt.status, JobAttempt.token_hash)
            .where(JobAttempt.task_id.in_({task for task, _ in keys}))
            .order_by(JobAttempt.id)
            .with_for_update()
        )
        for attempt_id, task_id, attempt, status, token_hash in result:
            if (task_id, attempt) in wanted:
                rows[(task_id, attempt)] = _Row(attempt_id, status, token_hash)
    if digest is not None:
        for task_id, attempt in keys:
            row = rows.get((task_id, attempt))
            if row is None or row.token_hash != digest:
                raise PermissionDenied(f"token {principal.name!r} may not report on task {task_id} attempt {attempt}")
    return rows


def record_heartbeats(*, session: Session, beats: Sequence[Beat], principal: Principal) -> list[bool]:
    """Note that these attempts are alive; for each, True while it is the live attempt (False
    tells the wrapper to stop it). A started attempt becomes Running, and so does its task."""
    keys = [(b.task_id, b.attempt) for b in beats]
    rows = _attempt_rows(session, keys, principal)
    live = {key for key, row in rows.items() if row.status in LIVE}
    started = [rows[(b.task_id, b.attempt)].id for b in beats if (b.task_id, b.attempt) in live and not b.queued]
    waiting = [rows[(b.task_id, b.attempt)].id for b in beats if (b.task_id, b.attempt) in live and b.queued]
    now = utcnow()
    if started:
        session.execute(
            update(JobAttempt)
            .where(JobAttempt.id.in_(started))
            .values(
                status=AttemptStatus.RUNNING.value,
                heartbeat_at=now,
                started_at=func.coalesce(JobAttempt.started_at, now),
            )
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Task)
            .where(
                tuple_(Task.id, Task.attempt).in_(
                    [(b.task_id, b.attempt) for b in beats if (b.task_id, b.attempt) in live and not b.queued]
                ),
                Task.status == TaskStatus.SUBMITTED.value,
            )
            .values(status=TaskStatus.RUNNING.value)
            .execution_options(synchronize_session=False)
        )
    if waiting:
        session.execute(
            update(JobAttempt)
            .where(JobAttempt.id.in_(waiting))
            .values(heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
    return [key in live for key in keys]


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
