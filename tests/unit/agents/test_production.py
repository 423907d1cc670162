"""The production agent's cycle on a real database: a transformation with nothing pending
ends with its outcome and so does its production; new work reopens both; idle otherwise."""

from __future__ import annotations

from pathlib import Path

from metaprod.agents.production import ProductionAgent
from metaprod.agents.settings import AgentSettings
from metaprod.core.auth import SYSTEM
from metaprod.core.statuses import ProductionStatus
from metaprod.db import productions, recovery
from metaprod.db.models import Production, Transformation
from metaprod.db.session import Database
from sqlalchemy import select

from tests.unit.db.test_jobs import claim, finalize, report
from tests.unit.db.test_tasks import cycle


def statuses(database: Database) -> tuple[str, dict[str, str]]:
    with database.session_scope(readonly=True) as session:
        production = session.scalars(select(Production.status)).one()
        return production, {n: s for n, s in session.execute(select(Transformation.name, Transformation.status))}


def run(database: Database, agent: ProductionAgent) -> str:
    with database.session_scope() as session:
        return agent.run_once(session)


def test_ends_with_the_outcome_and_reopens_on_new_work(database: Database, tmp_path: Path) -> None:
    spec = {
        "production": "p",
        "transformations": [
            {"name": "a", "tasks": 1, "command": "true"},
            {"name": "b", "tasks": 1, "command": "true", "max_attempts": 1},
        ],
    }
    with database.session_scope() as session:
        productions.create_production(session=session, spec=spec, principal=SYSTEM)
        productions.set_production_status(session=session, name="p", target=ProductionStatus.ACTIVE, principal=SYSTEM)
        ids = {name: tid for name, tid in session.execute(select(Transformation.name, Transformation.id))}
    agent = ProductionAgent(AgentSettings(data_dir=tmp_path))
    for tid in ids.values():
        cycle(database, tid)
    a, b = sorted(claim(database), key=lambda j: j.transformation)
    assert run(database, agent) == "idle"  # both running
    report(database, a, True)
    finalize(database)
    assert run(database, agent) == "ended 1 transformations, 0 productions; reopened 0; cleaned 0"
    assert statuses(database) == ("Active", {"a": "Completed", "b": "Active"})
    report(database, b, False)  # its only attempt: b fails for good
    finalize(database)
    assert run(database, agent) == "ended 1 transformations, 1 productions; reopened 0; cleaned 0"
    assert statuses(database) == ("Partial", {"a": "Completed", "b": "Failed"})
    assert run(database, agent) == "idle"
    with database.session_scope() as session:
        recovery.retry(session=session, production="p", name="b", task_ids=[], principal=SYSTEM)
    run(database, agent)
    assert statuses(database)[0] == "Active" and statuses(database)[1]["b"] == "Active"
