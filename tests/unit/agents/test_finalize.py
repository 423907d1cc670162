"""The finalize agent's cycle on a real database: a successful report's outputs reach the
catalog with provenance and its inputs are Processed; a failed one is retried; an output
outside the task's namespace fails the task; scratch goes only after the commit."""

from __future__ import annotations

from pathlib import Path

from metaprod.agents.finalize import FinalizeAgent
from metaprod.agents.settings import AgentSettings
from metaprod.core.auth import SYSTEM
from metaprod.db import catalog, jobs, reports
from metaprod.db.models import JobAttempt, Task
from metaprod.db.session import Database

from tests.unit.db.test_jobs import claim, file_statuses
from tests.unit.db.test_tasks import cycle, setup


def claimed(database: Database, tmp_path: Path, n: int) -> tuple[int, list[jobs.ClaimedJob]]:
    tid = setup(database, {"group_size": 1, "max_attempts": 2}, n)
    cycle(database, tid)
    mine = [j for j in claim(database) if j.transformation == "t"]
    with database.session_scope() as session:
        jobs.record_job_plans(
            session=session,
            plans=[[jobs.PlannedAttempt(j.attempt_id, str(tmp_path / f"scratch{j.task_id}"), "/log")] for j in mine],
        )
    for j in mine:
        (tmp_path / f"scratch{j.task_id}").mkdir()
    return tid, mine


def send(database: Database, job: jobs.ClaimedJob, success: bool, *outputs: str) -> None:
    files = tuple(
        catalog.FileInput(lfn=lfn, pfn=f"file:///s{lfn}", size=3, metadata={"datatype": "x"}) for lfn in outputs
    )
    with database.session_scope() as session:
        (outcome,) = reports.report_attempts(
            session=session,
            reports=[reports.AttemptReport(job.task_id, job.attempt, success, "" if success else "boom", 0, files)],
            principal=SYSTEM,
        )
    assert outcome.accepted


def test_registers_outputs_processes_inputs_retries_failures_and_removes_scratch_after_commit(
    database: Database, tmp_path: Path
) -> None:
    tid, (good, bad, outside) = claimed(database, tmp_path, 3)
    send(database, good, True, f"/p/t/{good.task_index:06d}/out.x")
    send(database, bad, False)
    send(database, outside, True, "/elsewhere/out.x")
    agent = FinalizeAgent(AgentSettings(data_dir=tmp_path, retry_backoff_seconds=0.0))
    with database.session_scope() as session:
        assert agent.run_once(session) == "finalized 1 tasks (1 outputs), 2 failed"
    assert all((tmp_path / f"scratch{j.task_id}").exists() for j in (good, bad, outside))  # not before the commit
    agent.after_commit(database)
    assert not any((tmp_path / f"scratch{j.task_id}").exists() for j in (good, bad, outside))
    with database.session_scope(readonly=True) as session:
        record = catalog.get_file(session=session, lfn=f"/p/t/{good.task_index:06d}/out.x")
        assert record.metadata["datatype"] == "x" and record.metadata["run"] == good.task_index % 2  # inherited
        assert session.get_one(Task, good.task_id).status == "Done"
        failed = session.get_one(Task, bad.task_id)
        assert (failed.status, session.get_one(JobAttempt, bad.attempt_id).status) == ("Created", "Failed")
        assert "boom" in (failed.last_error or "")
        assert "outside the task's namespace" in (session.get_one(Task, outside.task_id).last_error or "")
    assert file_statuses(database, tid) == {"Processed": 1, "Assigned": 2}
    with database.session_scope() as session:
        assert agent.run_once(session) == "idle"
