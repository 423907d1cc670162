"""The task agent's cycle on a real database: tasks for every Active transformation that has
Unused files or is a root short of tasks, nothing for one that is not Active, idle after."""

from __future__ import annotations

from metaprod.agents.tasks import TaskAgent
from metaprod.db.models import Task, Transformation
from metaprod.db.session import Database
from sqlalchemy import func, select, update

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
