"""Attempts on a real database: success marks inputs Processed, failures retry and end
Problematic, reset gives files back, kill frees Assigned files, stale reports are refused."""

from __future__ import annotations

import pytest
from metaprod.core.auth import SYSTEM
from metaprod.db import finalize as finalize_
from metaprod.db import jobs, productions, recovery, reports, tasks, transformations
from metaprod.db.models import Task, Transformation, TransformationFile
from metaprod.db.session import Database
from sqlalchemy import func, select, update

from tests.unit.db.test_tasks import complete_root, cycle, setup


def file_statuses(database: Database, tid: int) -> dict[str, int]:
    with database.session_scope(readonly=True) as session:
        rows = session.scalars(select(TransformationFile.status).where(TransformationFile.transformation_id == tid))
        result: dict[str, int] = {}
        for status in rows:
            result[status] = result.get(status, 0) + 1
        return result


def claim(database: Database) -> list[jobs.ClaimedJob]:
    with database.session_scope() as session:
        return jobs.claim_tasks(session=session, limit=100, max_queued_per_backend={})


def report(database: Database, job: jobs.ClaimedJob, success: bool) -> reports.ReportOutcome:
    with database.session_scope() as session:
        (outcome,) = reports.report_attempts(
            session=session,
            reports=[
                reports.AttemptReport(job.task_id, job.attempt, success, "" if success else "boom", 0 if success else 1)
            ],
            principal=SYSTEM,
        )
        return outcome


def finalize(database: Database) -> finalize_.FinalizeSummary:
    with database.session_scope() as session:
        return finalize_.finalize_reported(session=session, limit=100, backoff_base=0.0)


def test_success_failure_retry_problematic_reset_and_kill(database: Database) -> None:
    tid = setup(database, {"group_size": 2, "max_attempts": 2}, 4)
    complete_root(database)
    cycle(database, tid)
    claimed = [j for j in claim(database) if j.transformation == "t"]
    assert len(claimed) == 2 and all(len(j.inputs) == 2 for j in claimed)
    good, bad = claimed
    assert report(database, good, True).accepted
    assert report(database, bad, False).accepted
    assert not report(database, good, True).accepted  # a duplicate report changes nothing
    summary = finalize(database)
    assert (summary.done, summary.failed) == (1, 1)
    assert file_statuses(database, tid) == {"Processed": 2, "Assigned": 2}

    (retry,) = [j for j in claim(database) if j.transformation == "t"]
    assert retry.task_id == bad.task_id and retry.attempt == 2
    assert not report(database, bad, True).accepted  # attempt 1 was superseded
    report(database, retry, False)
    finalize(database)
    assert file_statuses(database, tid) == {"Processed": 2, "Problematic": 2}
    with database.session_scope(readonly=True) as session:
        task = session.get_one(Task, bad.task_id)
        assert task.status == "Failed" and "attempt 2: boom" in (task.last_error or "")

    with database.session_scope() as session:
        reset = recovery.reset_files(session=session, production="p", name="t", lfns=[], principal=SYSTEM)
    assert reset == 2 and file_statuses(database, tid) == {"Processed": 2, "Unused": 2}

    cycle(database, tid)
    assert file_statuses(database, tid) == {"Processed": 2, "Assigned": 2}
    with database.session_scope() as session:
        productions.kill_tasks(session=session, transformation_ids=[tid])
    assert file_statuses(database, tid) == {"Processed": 2, "Unused": 2}
    with database.session_scope(readonly=True) as session:
        rows = transformations.list_files(session=session, production="p", name="t", principal=SYSTEM)
    # The task column shows the last task that took each file.
    assert all(row.task_id is not None for row in rows)


def test_queue_caps_count_the_attempts_not_yet_reported(database: Database) -> None:
    tid = setup(database, {"group_size": 1}, 10)
    cycle(database, tid)

    def claim_within(per_backend: dict[str, int], per_transformation: int = 0) -> list[jobs.ClaimedJob]:
        with database.session_scope() as session:
            return jobs.claim_tasks(
                session=session,
                limit=100,
                max_queued_per_backend=per_backend,
                max_queued_per_transformation=per_transformation,
            )

    first = claim_within({"local": 4})
    assert len(first) == 4
    assert claim_within({"local": 4}) == []  # four queued: the backend's cap
    assert len(claim_within({"local": 5, "slurm": 1})) == 1  # each backend has its own cap
    for job in first[:2]:
        assert report(database, job, True).accepted
    # Reported (not yet finalized) attempts have left their backend: two places are free.
    assert len(claim_within({"local": 5})) == 2
    assert claim_within({}, per_transformation=5) == []  # five of one transformation queued
    assert len(claim_within({}, per_transformation=6)) == 1
    assert len(claim_within({})) == 2  # no cap: the rest


def test_a_small_production_is_claimed_before_the_backlog_of_a_large_root(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root of many tasks created batch by batch fills the table with Created tasks ahead
    of (by id) any production started later: the claim takes every transformation's
    lowest-indexed tasks first, so the later one is not queued behind the whole backlog."""
    monkeypatch.setattr(tasks, "ROOT_TASKS_PER_CYCLE", 40)
    ids: dict[str, int] = {}
    for name, count in (("big", 120), ("small", 3)):
        spec = {"production": name, "transformations": [{"name": "gen", "tasks": count, "command": "true"}]}
        with database.session_scope() as session:
            productions.create_production(session=session, spec=spec, principal=SYSTEM)
            session.execute(update(Transformation).values(status="Active"))
            ids[name] = int(session.scalar(select(func.max(Transformation.id))) or 0)
    # Two batches of the big root first, then the small production's tasks, then the rest.
    for tid in (ids["big"], ids["big"], ids["small"], ids["big"]):
        cycle(database, tid)
    with database.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 123
        claimed = jobs.claim_tasks(session=session, limit=10, max_queued_per_backend={})
    assert sorted((j.production, j.task_index) for j in claimed) == [
        *(("big", i) for i in range(7)),
        *(("small", i) for i in range(3)),
    ]
    with database.session_scope() as session:
        rest = jobs.claim_tasks(session=session, limit=10, max_queued_per_backend={})
    # Claimed twice from the front: the big root goes on from where it was.
    assert sorted((j.production, j.task_index) for j in rest) == [("big", i) for i in range(7, 17)]
