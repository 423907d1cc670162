"""The monitor agent's backstop of max_runtime, and the scratch of the attempts it ends, on a
real database with a fake backend."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from metaprod.agents.backends.base import JobState, JobStatus
from metaprod.agents.jobs import BackendPool
from metaprod.agents.monitor import MonitorAgent
from metaprod.agents.settings import AgentSettings
from metaprod.core.auth import SYSTEM
from metaprod.db import jobs, reports
from metaprod.db.models import JobAttempt, Task, Transformation, utcnow
from metaprod.db.session import Database
from sqlalchemy import update

from tests.unit.db.test_jobs import claim
from tests.unit.db.test_tasks import cycle, setup


class FakeBackend:
    def __init__(self) -> None:
        self.cancelled: list[str] = []

    def status(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        return {job_id: JobStatus(JobState.RUNNING) for job_id in job_ids}

    def cancel(self, job_ids: Sequence[str]) -> None:
        self.cancelled.extend(job_ids)


class FakePool:
    def __init__(self) -> None:
        self.backend = FakeBackend()

    def get(self, name: str) -> Any:
        return self.backend


def started_attempt(database: Database, scratch: Path, *, ran_for: float, max_runtime: int) -> jobs.ClaimedJob:
    """One attempt of transformation t, started `ran_for` seconds ago, its job `job-1`."""
    tid = setup(database, {"group_size": 1, "max_runtime": max_runtime}, 1)
    cycle(database, tid)
    (job,) = (j for j in claim(database) if j.transformation == "t")
    with database.session_scope() as session:
        session.execute(update(Transformation).where(Transformation.id == tid).values(max_runtime=max_runtime))
        jobs.record_job_plans(session=session, plans=[[jobs.PlannedAttempt(job.attempt_id, str(scratch), "/log")]])
        jobs.record_submissions(session=session, submissions=[jobs.Submission(job.attempt_id, "job-1")])
        reports.record_heartbeats(session=session, beats=[reports.Beat(job.task_id, job.attempt)], principal=SYSTEM)
        session.execute(
            update(JobAttempt)
            .where(JobAttempt.id == job.attempt_id)
            .values(started_at=utcnow() - timedelta(seconds=ran_for), heartbeat_at=utcnow())
        )
    return job


def monitor_cycle(database: Database, tmp_path: Path) -> tuple[str, FakePool]:
    pool = FakePool()
    agent = MonitorAgent(AgentSettings(data_dir=tmp_path, heartbeat_timeout=5.0), cast(BackendPool, pool))
    with database.session_scope() as session:
        status = agent.run_once(session)
    agent.after_commit(database)
    return status, pool


def test_an_attempt_past_max_runtime_and_the_grace_fails_its_job_is_cancelled_and_its_scratch_goes(
    database: Database, tmp_path: Path
) -> None:
    scratch = tmp_path / "work" / "job-1"
    (scratch / "t1-a1").mkdir(parents=True)
    job = started_attempt(database, scratch, ran_for=10.0, max_runtime=2)
    status, pool = monitor_cycle(database, tmp_path)
    assert "1 past max_runtime" in status
    assert pool.backend.cancelled == ["job-1"]
    assert not scratch.exists()
    with database.session_scope(readonly=True) as session:
        attempt = session.get_one(JobAttempt, job.attempt_id)
        task = session.get_one(Task, job.task_id)
        assert (attempt.status, attempt.error) == ("Failed", "killed after max_runtime 2s")
        assert task.status == "Created"  # retried: attempts remain
        assert "killed after max_runtime 2s" in (task.last_error or "")


def test_an_attempt_within_max_runtime_and_the_grace_is_left_alone(database: Database, tmp_path: Path) -> None:
    scratch = tmp_path / "work" / "job-1"
    scratch.mkdir(parents=True)
    started_attempt(database, scratch, ran_for=4.0, max_runtime=2)  # the wrapper has 5 s more to report
    status, pool = monitor_cycle(database, tmp_path)
    assert status == "watching 1 jobs" and pool.backend.cancelled == [] and scratch.exists()
