"""The submit agent's cycle on a real database with a fake backend: claims in the cycle's
transaction, launches only after it committed, bundles when more are due than the backend
runs at once, respects the queue caps, fails (and retries) refused submissions, and never
submits an attempt twice when its submission record was lost."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from metaprod.agents.backends.base import JobState, JobStatus
from metaprod.agents.settings import AgentSettings
from metaprod.agents.submit import SubmitAgent
from metaprod.db.models import JobAttempt, Task
from metaprod.db.session import Database
from sqlalchemy import select

from tests.unit.agents.fakes import FakeBackend, FakePool
from tests.unit.db.test_tasks import cycle, setup


def agent(tmp_path: Path, backend: FakeBackend, **settings: object) -> SubmitAgent:
    values: dict[str, object] = {"retry_backoff_seconds": 0.0, **settings}
    return SubmitAgent(AgentSettings(data_dir=tmp_path, **values), FakePool(backend).as_pool())  # type: ignore[arg-type]


def due(database: Database, n: int) -> int:
    tid = setup(database, {"group_size": 1}, n)
    cycle(database, tid)
    return tid


def attempts(database: Database) -> list[tuple[int, str, str | None, str]]:
    """(task id, attempt status, backend job id, task status) of every attempt."""
    with database.session_scope(readonly=True) as session:
        rows = session.execute(
            select(JobAttempt.task_id, JobAttempt.status, JobAttempt.backend_job_id, Task.status)
            .join(Task, Task.id == JobAttempt.task_id)
            .order_by(JobAttempt.id)
        )
        return [(t, s, j, ts) for t, s, j, ts in rows]


def run(database: Database, submit: SubmitAgent) -> str:
    with database.session_scope() as session:
        status = submit.run_once(session)
    submit.after_commit(database)
    return status


def test_claims_in_the_transaction_and_launches_after_the_commit(database: Database, tmp_path: Path) -> None:
    due(database, 3)
    backend = FakeBackend(capacity=4)
    submit = agent(tmp_path, backend)
    with database.session_scope() as session:
        assert submit.run_once(session) == "claimed 3 tasks in 3 jobs"
        assert backend.submitted == []  # nothing launched while the claim may still roll back
    submit.after_commit(database)
    assert sorted(spec.key for spec in backend.submitted) == sorted({spec.key for spec in backend.submitted})
    assert len(backend.submitted) == 3
    rows = attempts(database)
    assert [(s, ts) for _, s, _, ts in rows] == [("Submitted", "Submitted")] * 3
    assert sorted(j or "" for _, _, j, _ in rows) == ["job-1", "job-2", "job-3"]
    for spec in backend.submitted:
        job_file = Path(spec.env["METAPROD_JOB_FILE"])
        assert stat.S_IMODE(job_file.stat().st_mode) == 0o600  # it holds the worker token
        assert len(json.loads(job_file.read_text())["tasks"]) == 1
    assert run(database, submit) == "idle"
    assert len(backend.submitted) == 3


def test_more_due_than_the_backend_runs_at_once_share_jobs(database: Database, tmp_path: Path) -> None:
    due(database, 5)
    backend = FakeBackend(capacity=2)
    assert run(database, agent(tmp_path, backend, max_bundle=32)) == "claimed 5 tasks in 2 jobs"
    sizes = sorted(len(json.loads(Path(s.env["METAPROD_JOB_FILE"]).read_text())["tasks"]) for s in backend.submitted)
    assert sizes == [2, 3]
    jobs_of = {j for _, _, j, _ in attempts(database)}
    assert jobs_of == {"job-1", "job-2"}


def test_the_queue_cap_holds_back_what_does_not_fit(database: Database, tmp_path: Path) -> None:
    due(database, 5)
    backend = FakeBackend(capacity=4)
    submit = agent(tmp_path, backend, max_queued_per_backend={"local": 2})
    assert run(database, submit) == "claimed 2 tasks in 2 jobs"
    assert run(database, submit) == "idle"  # two queued, none reported: the cap is full
    with database.session_scope(readonly=True) as session:
        statuses = sorted(session.scalars(select(Task.status)))
    assert statuses == ["Created"] * 3 + ["Submitted"] * 2


def test_a_refused_submission_fails_the_attempt_and_the_task_is_retried(database: Database, tmp_path: Path) -> None:
    due(database, 1)
    backend = FakeBackend()
    backend.refuse = "sbatch: error: invalid partition"
    submit = agent(tmp_path, backend)
    assert run(database, submit) == "claimed 1 tasks in 1 jobs"
    ((task_id, status, job_id, task_status),) = attempts(database)
    assert (status, job_id, task_status) == ("Failed", None, "Created")
    with database.session_scope(readonly=True) as session:
        error = session.get_one(Task, task_id).last_error or ""
    assert "submission to backend 'local' failed: sbatch: error: invalid partition" in error
    backend.refuse = None
    assert run(database, submit) == "claimed 1 tasks in 1 jobs"  # the retry, submitted this time
    assert [s for _, s, _, _ in attempts(database)] == ["Failed", "Submitted"]


def test_a_claim_whose_submission_was_never_recorded_is_not_submitted_again(database: Database, tmp_path: Path) -> None:
    """The submitting agent died between its claim's commit and `after_commit`: the attempt
    stays without a backend id (the monitor declares it lost later); no agent claims it again."""
    due(database, 2)
    dead = agent(tmp_path, FakeBackend())
    with database.session_scope() as session:
        assert dead.run_once(session) == "claimed 2 tasks in 2 jobs"
    # ... killed here: no after_commit.
    backend = FakeBackend()
    assert run(database, agent(tmp_path, backend)) == "idle"
    assert backend.submitted == []
    assert [(s, j) for _, s, j, _ in attempts(database)] == [("Submitted", None)] * 2


def test_agents_processes_with_pools_of_their_own_share_the_work(database: Database, tmp_path: Path) -> None:
    """Two agents processes, each with a local pool of 2: each caps its own queue (4 x its
    capacity before any attempt ended, then two seconds of its pace, measured since its queue
    became busy), so the first to claim leaves work for the other instead of queueing
    everything in its own pool."""
    due(database, 100)
    first, second = FakeBackend(capacity=2, per_process_queue=True), FakeBackend(capacity=2, per_process_queue=True)
    a, b = agent(tmp_path / "a", first), agent(tmp_path / "b", second)
    assert run(database, a) == "claimed 8 tasks in 2 jobs"  # bundles: more due than the pool runs
    assert run(database, a) == "idle"  # its own queue is full while those run
    assert run(database, b) == "claimed 8 tasks in 2 jobs"
    for n in (1, 2):  # the first process's jobs end at once: its pace lets it take the rest
        first.states[f"job-{n}"] = JobStatus(JobState.SUCCEEDED, 0)
    assert run(database, a).startswith("claimed 84 tasks in ")
    assert run(database, b) == "idle"


def test_a_shared_batch_queue_is_counted_over_every_process(database: Database, tmp_path: Path) -> None:
    due(database, 30)
    a = agent(tmp_path / "a", FakeBackend(capacity=2), max_queued_per_backend={"local": 10})
    b = agent(tmp_path / "b", FakeBackend(capacity=2), max_queued_per_backend={"local": 10})
    assert run(database, a) == "claimed 10 tasks in 2 jobs"
    assert run(database, b) == "idle"  # the cluster's queue is full, whoever filled it
