"""The monitor agent's backstop of max_runtime, and the scratch of the attempts it ends, on a
real database with a fake backend."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from metaprod.agents.backends.base import JobState, JobStatus
from metaprod.agents.monitor import MonitorAgent
from metaprod.agents.settings import AgentSettings
from metaprod.core.auth import SYSTEM
from metaprod.db import jobs, productions, reports
from metaprod.db.models import JobAttempt, Task, Transformation, utcnow
from metaprod.db.session import Database
from sqlalchemy import update

from tests.unit.agents.fakes import FakeBackend, FakePool
from tests.unit.db.test_jobs import claim
from tests.unit.db.test_tasks import cycle, setup


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
    agent = MonitorAgent(AgentSettings(data_dir=tmp_path, heartbeat_timeout=5.0), pool.as_pool())
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


# -- each way an attempt is lost, and each way it is not ---------------------------------------
def live(
    database: Database,
    tmp_path: Path,
    *,
    job_id: str | None = "job-1",
    submitted_ago: float = 0.0,
    beaten_ago: float | None = None,
    max_attempts: int = 3,
) -> jobs.ClaimedJob:
    """One claimed attempt of transformation t with a scratch directory: its submission
    recorded as `job_id` (None: never recorded), `submitted_ago` seconds ago, its last
    heartbeat `beaten_ago` seconds ago (None: never beaten)."""
    tid = setup(database, {"group_size": 1, "max_attempts": max_attempts}, 1)
    cycle(database, tid)
    (job,) = (j for j in claim(database) if j.transformation == "t")
    scratch = tmp_path / "work" / f"t{job.task_id}"
    scratch.mkdir(parents=True)
    now = utcnow()
    with database.session_scope() as session:
        jobs.record_job_plans(session=session, plans=[[jobs.PlannedAttempt(job.attempt_id, str(scratch), "/log")]])
        if job_id is not None:
            jobs.record_submissions(session=session, submissions=[jobs.Submission(job.attempt_id, job_id)])
        session.execute(
            update(JobAttempt)
            .where(JobAttempt.id == job.attempt_id)
            .values(
                submitted_at=now - timedelta(seconds=submitted_ago),
                heartbeat_at=None if beaten_ago is None else now - timedelta(seconds=beaten_ago),
            )
        )
    return job


def watch(database: Database, agent: MonitorAgent) -> str:
    with database.session_scope() as session:
        status = agent.run_once(session)
    agent.after_commit(database)
    return status


def state(database: Database, job: jobs.ClaimedJob) -> tuple[str, str, str, int]:
    """(attempt status, attempt error, task status, task attempt)."""
    with database.session_scope(readonly=True) as session:
        attempt = session.get_one(JobAttempt, job.attempt_id)
        task = session.get_one(Task, job.task_id)
        return attempt.status, attempt.error or "", task.status, task.attempt


def monitor(tmp_path: Path, backend: FakeBackend | None = None, **settings: float) -> tuple[MonitorAgent, FakePool]:
    pool = FakePool(backend)
    values: dict[str, float] = {
        "heartbeat_timeout": 5.0,
        "submit_grace_seconds": 10.0,
        "report_grace_seconds": 3.0,
        "retry_backoff_seconds": 0.0,
        **settings,
    }
    return MonitorAgent(AgentSettings(data_dir=tmp_path, **values), pool.as_pool()), pool  # type: ignore[arg-type]


def test_a_submission_never_recorded_is_lost_after_the_submit_grace_and_retried(
    database: Database, tmp_path: Path
) -> None:
    job = live(database, tmp_path, job_id=None, submitted_ago=11.0)
    agent, pool = monitor(tmp_path)
    assert watch(database, agent) == "watching 1 jobs; 1 lost, 0 killed, 0 past max_runtime"
    status, error, task_status, _ = state(database, job)
    assert (status, task_status) == ("Lost", "Created")  # retried: attempts remain
    assert error == "lost: its submission was never recorded (the submitting agent died)"
    assert pool.backend.cancelled == []  # no job to cancel
    assert not (tmp_path / "work" / f"t{job.task_id}").exists()


def test_a_submission_not_yet_recorded_within_the_grace_is_left_alone(database: Database, tmp_path: Path) -> None:
    job = live(database, tmp_path, job_id=None, submitted_ago=9.0)
    agent, _ = monitor(tmp_path)
    assert watch(database, agent) == "watching 1 jobs"
    assert state(database, job)[0] == "Submitted"


@pytest.mark.parametrize("ended", [JobStatus(JobState.SUCCEEDED), JobStatus(JobState.FAILED, 9, "exit code 9")])
def test_a_job_that_ended_without_reporting_is_lost_after_the_report_grace(
    database: Database, tmp_path: Path, ended: JobStatus
) -> None:
    job = live(database, tmp_path, submitted_ago=30.0, beaten_ago=4.0)
    backend = FakeBackend()
    backend.states["job-1"] = ended
    agent, pool = monitor(tmp_path, backend)
    assert "1 lost" in watch(database, agent)
    status, error, task_status, _ = state(database, job)
    assert (status, task_status) == ("Lost", "Created")
    assert error == f"lost: the job ended ({ended.reason or ended.state.value}) without reporting"
    assert pool.backend.cancelled == ["job-1"]


def test_a_job_that_just_ended_has_the_report_grace_to_report(database: Database, tmp_path: Path) -> None:
    job = live(database, tmp_path, submitted_ago=30.0, beaten_ago=2.0)
    backend = FakeBackend()
    backend.states["job-1"] = JobStatus(JobState.SUCCEEDED)
    agent, pool = monitor(tmp_path, backend)
    assert watch(database, agent) == "watching 1 jobs"
    assert state(database, job)[0] == "Submitted" and pool.backend.cancelled == []


def test_a_job_pending_in_its_batch_queue_is_never_lost(database: Database, tmp_path: Path) -> None:
    job = live(database, tmp_path, submitted_ago=3600.0)  # an hour in the Slurm queue, never beaten
    backend = FakeBackend()
    backend.states["job-1"] = JobStatus(JobState.PENDING)
    agent, pool = monitor(tmp_path, backend)
    assert watch(database, agent) == "watching 1 jobs"
    assert state(database, job)[0] == "Submitted" and pool.backend.cancelled == []


def test_a_never_beaten_job_gets_the_whole_timeout_from_when_it_was_seen_running(
    database: Database, tmp_path: Path
) -> None:
    job = live(database, tmp_path, submitted_ago=3600.0)  # queued for an hour, running now
    agent, _ = monitor(tmp_path, heartbeat_timeout=0.5)
    assert watch(database, agent) == "watching 1 jobs"  # first seen running: its timeout starts
    assert state(database, job)[0] == "Submitted"
    time.sleep(0.7)
    assert "1 lost" in watch(database, agent)
    status, error, task_status, _ = state(database, job)
    assert (status, task_status) == ("Lost", "Created") and error.startswith("lost: no heartbeat for ")


def test_a_silent_job_is_lost_and_past_max_attempts_its_task_fails(database: Database, tmp_path: Path) -> None:
    job = live(database, tmp_path, submitted_ago=60.0, beaten_ago=6.0, max_attempts=1)
    agent, pool = monitor(tmp_path)
    assert "1 lost" in watch(database, agent)
    status, error, task_status, attempt = state(database, job)
    assert (status, task_status, attempt) == ("Lost", "Failed", 1)
    assert error == "lost: no heartbeat for 6 s (timeout 5 s)"
    assert pool.backend.cancelled == ["job-1"]
    with database.session_scope(readonly=True) as session:
        assert "lost: no heartbeat" in (session.get_one(Task, job.task_id).last_error or "")


def test_an_unreachable_backend_leaves_the_judgement_to_heartbeats(database: Database, tmp_path: Path) -> None:
    beating = live(database, tmp_path, submitted_ago=60.0, beaten_ago=1.0)
    backend = FakeBackend()
    backend.unreachable = True
    agent, _ = monitor(tmp_path, backend)
    assert watch(database, agent) == "watching 1 jobs"
    assert state(database, beating)[0] == "Submitted"
    with database.session_scope() as session:  # silent past the timeout: lost all the same
        session.execute(
            update(JobAttempt)
            .where(JobAttempt.id == beating.attempt_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=6))
        )
    assert "1 lost" in watch(database, agent)  # the cancel fails too, quietly
    assert state(database, beating)[:3:2] == ("Lost", "Created")


def test_the_jobs_of_killed_tasks_are_cancelled_and_their_attempts_killed(database: Database, tmp_path: Path) -> None:
    job = live(database, tmp_path, submitted_ago=1.0, beaten_ago=0.5)
    with database.session_scope() as session:
        tid = session.get_one(Task, job.task_id).transformation_id
        productions.kill_tasks(session=session, transformation_ids=[tid])
    agent, pool = monitor(tmp_path)
    assert watch(database, agent) == "watching 1 jobs; 0 lost, 1 killed, 0 past max_runtime"
    status, error, task_status, _ = state(database, job)
    assert (status, task_status) == ("Killed", "Killed") and error.startswith("killed:")
    assert pool.backend.cancelled == ["job-1"]
    assert watch(database, agent) == "idle"
