"""The task agent's cycle on a real database: tasks for every Active transformation that has
Unused files or is a root short of tasks, nothing for one that is not Active, idle after."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from metaprod.agents.tasks import TaskAgent
from metaprod.db.models import Task, Transformation
from metaprod.db.session import Database
from sqlalchemy import func, select, update

from tests.conftest import TEST_DB
from tests.unit.db.test_tasks import setup


def run(database: Database) -> str:
    with database.session_scope() as session:
        return TaskAgent().run_once(session)


def count(database: Database) -> int:
    with database.session_scope(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(Task)) or 0)


def test_makes_the_tasks_of_every_active_transformation_then_idles(database: Database) -> None:
    setup(database, {"group_size": 2}, 4)  # root: 3 tasks; t: 4 files in pairs
    assert run(database) == "created 5 tasks over 4 files"
    assert count(database) == 5
    assert run(database) == "idle"


def test_a_transformation_not_active_gets_no_task(database: Database) -> None:
    tid = setup(database, {"group_size": 1}, 2)
    with database.session_scope() as session:
        session.execute(update(Transformation).values(status="Stopped"))
    assert run(database) == "idle" and count(database) == 0
    with database.session_scope() as session:
        session.execute(update(Transformation).where(Transformation.id == tid).values(status="Active"))
    assert run(database) == "created 2 tasks over 2 files"


def test_a_root_of_a_million_tasks_is_created_batch_by_batch_beside_other_work(database: Database) -> None:
    """Lazy creation: a cycle makes ROOT_TASKS_PER_CYCLE of a huge root quickly, with memory
    that does not grow with the root's total, serves the other transformation in the same
    cycle, says more are due (its own wake), and progress counts the declared total."""
    from metaprod.core.auth import SYSTEM
    from metaprod.db import productions, tasks

    setup(database, {"group_size": 2}, 4)  # another production's work: a root of 3, 2 tasks of files
    spec = {
        "production": "huge",
        "transformations": [{"name": "sim", "tasks": 1_000_000, "command": "true"}],
    }
    with database.session_scope() as session:
        productions.create_production(session=session, spec=spec, principal=SYSTEM)
        session.execute(update(Transformation).values(status="Active"))
    assert "tasks_due" in TaskAgent.produces and "tasks_due" in TaskAgent.wakes_on
    tracemalloc.start()
    started = time.perf_counter()
    status = run(database)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    batch = tasks.ROOT_TASKS_PER_CYCLE
    assert status == f"created {batch + 5} tasks over 4 files (more due)"
    assert elapsed < 10, elapsed
    # Flat: a batch's rows, never a list of a million (which alone is ~100 MB of tuples).
    assert peak < 40 * 1024 * 1024, peak
    assert count(database) == batch + 5
    assert run(database) == f"created {batch} tasks over 0 files (more due)"
    with database.session_scope(readonly=True) as session:
        progress = productions.production_progress(session=session, name="huge", principal=SYSTEM)
    (sim,) = progress.transformations
    assert sim.task_count == 1_000_000 and sum(sim.tasks.values()) == 2 * batch
    assert progress.percent == 0


@pytest.mark.skipif(TEST_DB == "sqlite", reason="row locks (MariaDB): SQLite serializes writers instead")
def test_a_transformation_held_elsewhere_is_tried_again_at_once(database: Database) -> None:
    """A cycle that finds its transformation locked by another transaction (the submit agent's
    claim woken by the same start) says so and wakes itself, instead of waiting for a poll."""
    setup(database, {"group_size": 1}, 2)
    other = database.engine.connect()
    try:
        transaction = other.begin()
        other.execute(select(Transformation.id).with_for_update())  # every transformation held
        agent = TaskAgent()
        with database.session_scope() as session:
            status = agent.run_once(session)
        assert status == "2 transformations held elsewhere: trying again"
        assert "tasks_due" in agent.produced()
        transaction.rollback()
    finally:
        other.close()
    agent = TaskAgent()
    with database.session_scope() as session:
        assert agent.run_once(session) == "created 5 tasks over 2 files"
    assert agent.produced() == frozenset({"tasks"})


def test_a_root_keeps_a_bounded_backlog_of_created_tasks_and_a_kill_stays_bounded(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creation stays ROOT_BACKLOG ahead of execution: a full backlog makes nothing (and asks
    for no wake), tasks leaving Created make room again, and a kill of the root marks only
    the tasks that exist, never the millions still to come, which it creates after a restart."""
    from metaprod.core.auth import SYSTEM
    from metaprod.db import jobs, productions, tasks

    monkeypatch.setattr(tasks, "ROOT_TASKS_PER_CYCLE", 30)
    monkeypatch.setattr(tasks, "ROOT_BACKLOG", 50)
    spec = {"production": "huge", "transformations": [{"name": "sim", "tasks": 10_000_000, "command": "true"}]}
    with database.session_scope() as session:
        productions.create_production(session=session, spec=spec, principal=SYSTEM)
        productions.set_production_status(
            session=session, name="huge", target=productions.ProductionStatus.ACTIVE, principal=SYSTEM
        )
    assert run(database) == "created 30 tasks over 0 files (more due)"
    assert run(database) == "created 20 tasks over 0 files"  # the backlog is full: no wake
    assert run(database) == "idle" and count(database) == 50
    with database.session_scope() as session:
        claimed = jobs.claim_tasks(session=session, limit=15, max_queued_per_backend={})
    assert len(claimed) == 15
    assert run(database) == "created 15 tasks over 0 files"
    assert count(database) == 65
    with database.session_scope() as session:
        productions.set_production_status(
            session=session, name="huge", target=productions.ProductionStatus.STOPPED, principal=SYSTEM, kill=True
        )
    with database.session_scope(readonly=True) as session:
        progress = productions.production_progress(session=session, name="huge", principal=SYSTEM)
    (sim,) = progress.transformations
    assert sim.tasks["Killed"] == 65 and sim.task_count == 10_000_000
    with database.session_scope() as session:
        productions.set_production_status(
            session=session, name="huge", target=productions.ProductionStatus.ACTIVE, principal=SYSTEM
        )
    assert run(database) == "created 30 tasks over 0 files (more due)"
    with database.session_scope(readonly=True) as session:
        indexes = session.scalars(select(Task.task_index).where(Task.status == "Created")).all()
    assert sorted(indexes) == list(range(65, 95))  # the killed ones stay killed, the rest follow
