"""Heartbeats and reports of task attempts on a real database: a bundle's worker token speaks
for its own attempts only, checked before anything is written; queued attempts stay
Submitted; a duplicate or late report changes nothing."""

from __future__ import annotations

import pytest
from metaprod.core.auth import SYSTEM, Principal, Role
from metaprod.core.errors import PermissionDenied, Unauthenticated
from metaprod.db import jobs, reports, tokens, transformations
from metaprod.db.models import JobAttempt, Task
from metaprod.db.session import Database
from sqlalchemy import event, select

from tests.unit.db.test_jobs import claim
from tests.unit.db.test_tasks import cycle, setup


def claimed_bundle(database: Database) -> tuple[list[jobs.ClaimedJob], jobs.ClaimedJob, Principal]:
    """Three claimed attempts: the first two share a bundle token, the third keeps its own."""
    tid = setup(database, {"group_size": 1}, 3)
    cycle(database, tid)
    first, second, lone = (j for j in claim(database) if j.transformation == "t")
    with database.session_scope() as session:
        plans = [
            [jobs.PlannedAttempt(j.attempt_id, f"/scratch/{j.task_id}", f"/log/{j.task_id}") for j in (first, second)]
        ]
        plans.append([jobs.PlannedAttempt(lone.attempt_id, "/scratch/lone", "/log/lone")])
        secret, own = jobs.record_job_plans(session=session, plans=plans)
    assert secret is not None and own is None  # a job of one keeps its own token
    with database.session_scope(readonly=True) as session:
        principal = tokens.authenticate(session=session, secret=secret)
        assert tokens.authenticate(session=session, secret=lone.secret).role is Role.WORKER
        scratch = session.scalar(select(JobAttempt.workdir).where(JobAttempt.id == lone.attempt_id))
        assert scratch == "/scratch/lone"
        # The attempts' own tokens, replaced by the bundle's, no longer authenticate.
        with pytest.raises(Unauthenticated, match="unknown token"):
            tokens.authenticate(session=session, secret=first.secret)
    assert principal.role is Role.WORKER
    return [first, second], lone, principal


def states(database: Database) -> dict[int, tuple[str, str]]:
    """task id -> (task status, live attempt status)."""
    with database.session_scope(readonly=True) as session:
        rows = session.execute(
            select(Task.id, Task.status, JobAttempt.status).join(
                JobAttempt, (JobAttempt.task_id == Task.id) & (JobAttempt.attempt == Task.attempt)
            )
        )
        return {task_id: (task_status, attempt_status) for task_id, task_status, attempt_status in rows}


def beat(database: Database, principal: Principal, beats: list[reports.Beat]) -> list[bool]:
    return [o.proceed for o in beat_outcomes(database, principal, beats)]


def beat_outcomes(database: Database, principal: Principal, beats: list[reports.Beat]) -> list[reports.BeatOutcome]:
    with database.session_scope() as session:
        return reports.record_heartbeats(session=session, beats=beats, principal=principal)


def report(database: Database, principal: Principal, *items: reports.AttemptReport) -> list[reports.ReportOutcome]:
    with database.session_scope() as session:
        return reports.report_attempts(session=session, reports=list(items), principal=principal)


def test_bundle_heartbeat_marks_the_started_attempt_running_and_keeps_the_queued_one_submitted(
    database: Database,
) -> None:
    (running, queued), _, worker = claimed_bundle(database)
    proceed = beat(
        database,
        worker,
        [reports.Beat(running.task_id, running.attempt), reports.Beat(queued.task_id, queued.attempt, queued=True)],
    )
    assert proceed == [True, True]
    now = states(database)
    assert now[running.task_id] == ("Running", "Running")
    assert now[queued.task_id] == ("Submitted", "Submitted")
    with database.session_scope(readonly=True) as session:
        beaten = session.scalar(select(JobAttempt.heartbeat_at).where(JobAttempt.id == queued.attempt_id))
    assert beaten is not None  # alive, though not started


def test_bundle_reports_are_taken_once_and_only_for_live_attempts(database: Database) -> None:
    (a, b), _, worker = claimed_bundle(database)
    ok_a = reports.AttemptReport(a.task_id, a.attempt, True)
    ok_b = reports.AttemptReport(b.task_id, b.attempt, False, "boom", 2)
    # A report repeated within one call counts once. Each attempt keeps its own report, all
    # written by one statement (not one per attempt).
    updates: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    outcomes = report(database, worker, ok_a, ok_b, ok_a)
    event.remove(database.engine, "before_cursor_execute", count)
    assert len(updates) == 1
    assert [o.accepted for o in outcomes] == [True, True, False]
    assert all(o.status == "Reported" for o in outcomes)
    # Sent again (a retry after a lost answer): nothing changes.
    assert [o.accepted for o in report(database, worker, ok_a, ok_b)] == [False, False]
    # Once reported, the attempts are no longer live: the wrapper is told to stop beating.
    assert beat(database, worker, [reports.Beat(a.task_id, a.attempt)]) == [False]
    with database.session_scope(readonly=True) as session:
        rows = session.execute(
            select(JobAttempt.id, JobAttempt.report, JobAttempt.exit_code).where(
                JobAttempt.id.in_([a.attempt_id, b.attempt_id])
            )
        ).all()
    stored = {attempt_id: doc for attempt_id, doc, _ in rows}
    exit_codes = {attempt_id: code for attempt_id, _, code in rows}
    assert stored[b.attempt_id] is not None and stored[b.attempt_id]["error"] == "boom"
    assert stored[a.attempt_id] is not None and stored[a.attempt_id]["success"] is True
    assert exit_codes == {a.attempt_id: 0, b.attempt_id: 2}


def test_a_bundle_token_cannot_speak_for_another_attempt_and_changes_nothing(database: Database) -> None:
    (a, _), lone, worker = claimed_bundle(database)
    before = states(database)
    mixed = [reports.AttemptReport(a.task_id, a.attempt, True), reports.AttemptReport(lone.task_id, lone.attempt, True)]
    with pytest.raises(PermissionDenied, match=f"task {lone.task_id} attempt {lone.attempt}"):
        report(database, worker, *mixed)
    with pytest.raises(PermissionDenied):
        beat(database, worker, [reports.Beat(a.task_id, a.attempt), reports.Beat(lone.task_id, lone.attempt)])
    # An attempt that does not exist is no more the token's than another one.
    with pytest.raises(PermissionDenied):
        report(database, worker, reports.AttemptReport(a.task_id, a.attempt + 1, True))
    assert states(database) == before


def test_only_admins_and_worker_tokens_report(database: Database) -> None:
    (a, _), _, _ = claimed_bundle(database)
    user = Principal("alice", Role.USER, "alice")
    with pytest.raises(PermissionDenied, match="may not report"):
        report(database, user, reports.AttemptReport(a.task_id, a.attempt, True))
    with pytest.raises(PermissionDenied, match="may not report"):
        beat(database, user, [reports.Beat(a.task_id, a.attempt)])
    # The system (an admin) speaks for any attempt; an unknown one is simply not live.
    assert beat(database, SYSTEM, [reports.Beat(a.task_id, a.attempt), reports.Beat(987654, 1)]) == [True, False]
    unknown = report(database, SYSTEM, reports.AttemptReport(987654, 1, True))
    assert unknown == [reports.ReportOutcome(False, "Unknown")]


def stop(database: Database, status: str = "Stopped", *, kill: bool = False) -> None:
    with database.session_scope() as session:
        transformations.set_transformation_status(
            session=session, production="p", name="t", status=status, principal=SYSTEM, kill=kill
        )


def attempt_rows(database: Database, task_id: int) -> list[tuple[int, str]]:
    with database.session_scope(readonly=True) as session:
        return [
            (n, status)
            for n, status in session.execute(
                select(JobAttempt.attempt, JobAttempt.status).where(JobAttempt.task_id == task_id)
            )
        ]


def test_a_start_asked_for_is_granted_while_the_transformation_is_active(database: Database) -> None:
    (a, _), _, worker = claimed_bundle(database)
    assert beat_outcomes(database, worker, [reports.Beat(a.task_id, a.attempt)]) == [reports.BeatOutcome(True)]
    assert states(database)[a.task_id] == ("Running", "Running")


def test_after_a_stop_attempts_not_started_go_back_to_their_tasks_uncounted(database: Database) -> None:
    (a, b), _, worker = claimed_bundle(database)
    assert beat(database, worker, [reports.Beat(a.task_id, a.attempt)]) == [True]  # a runs
    stop(database)
    # The running attempt goes on; the one asking to start and a queued one are withdrawn.
    outcomes = beat_outcomes(
        database,
        worker,
        [
            reports.Beat(a.task_id, a.attempt),
            reports.Beat(b.task_id, b.attempt),
            reports.Beat(b.task_id, b.attempt, True),
        ],
    )
    assert outcomes == [reports.BeatOutcome(True), reports.BeatOutcome(False, True), reports.BeatOutcome(False, True)]
    assert states(database)[a.task_id] == ("Running", "Running")
    assert attempt_rows(database, b.task_id) == []  # the attempt is not on record: it never was
    with database.session_scope(readonly=True) as session:
        task = session.get_one(Task, b.task_id)
        assert (task.status, task.attempt, task.backend_job_id) == ("Created", b.attempt - 1, None)
    # Asked again (a retry after a lost answer): nothing is left to start, and nothing fails.
    assert beat_outcomes(database, worker, [reports.Beat(b.task_id, b.attempt)]) == [reports.BeatOutcome(False)]
    # Started again, the task is claimed with the same attempt number and a new token.
    stop(database, "Active")
    again = [j for j in claim(database) if j.task_id == b.task_id]
    assert [j.attempt for j in again] == [b.attempt]


def test_a_killed_task_is_not_started_and_not_withdrawn(database: Database) -> None:
    (_, b), _, worker = claimed_bundle(database)
    stop(database, kill=True)
    assert beat_outcomes(database, worker, [reports.Beat(b.task_id, b.attempt)]) == [reports.BeatOutcome(False)]
    assert attempt_rows(database, b.task_id) == [(b.attempt, "Submitted")]  # the monitor ends it as Killed


def may_start(database: Database, principal: Principal, *attempts: jobs.ClaimedJob) -> bool:
    with database.session_scope(readonly=True) as session:
        keys = [(a.task_id, a.attempt) for a in attempts]
        return reports.may_start(session=session, keys=keys, principal=principal)


def test_a_start_lease_is_granted_on_reads_alone_while_the_attempts_may_start(database: Database) -> None:
    (a, b), lone, worker = claimed_bundle(database)
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.upper())

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        assert may_start(database, worker, a, b)
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    # No lock, no write (BEGIN: SQLite's read transaction, DEFERRED).
    assert {s.split(None, 1)[0] for s in statements} <= {"BEGIN", "SELECT"}
    assert not [s for s in statements if "FOR UPDATE" in s or "IMMEDIATE" in s]
    assert states(database)[a.task_id] == ("Submitted", "Submitted")
    # A token speaks for its own attempts only.
    with pytest.raises(PermissionDenied):
        may_start(database, worker, a, lone)
    # Not when one is running already, or its task was killed, or its transformation stopped:
    # record_heartbeats decides those, with locks.
    assert beat(database, worker, [reports.Beat(a.task_id, a.attempt)]) == [True]
    assert not may_start(database, worker, a, b)
    assert may_start(database, worker, b)
    stop(database)
    assert not may_start(database, worker, b)
    stop(database, "Active")
    stop(database, kill=True)
    assert not may_start(database, worker, b)


def test_a_started_attempt_runs_on_after_a_stop_and_is_never_withdrawn(database: Database) -> None:
    """Started under a lease granted before the stop: its beats make it Running, not withdrawn."""
    (a, b), _, worker = claimed_bundle(database)
    stop(database)
    outcomes = beat_outcomes(
        database, worker, [reports.Beat(a.task_id, a.attempt, started=True), reports.Beat(b.task_id, b.attempt, True)]
    )
    assert outcomes == [reports.BeatOutcome(True), reports.BeatOutcome(False, True)]
    assert states(database)[a.task_id] == ("Running", "Running")
    assert attempt_rows(database, b.task_id) == []
    # A withdrawn attempt asked for again: no lease, and no permission error either.
    assert not may_start(database, worker, b)
