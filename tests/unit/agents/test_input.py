"""The input agent's cycle on a real database: files catalogued before their transformation
was started are attached by the back-fill scan, once."""

from __future__ import annotations

import pytest
from metaprod.agents import input as input_agent
from metaprod.agents.input import InputAgent
from metaprod.db import catalog
from metaprod.db.models import Transformation, TransformationFile
from metaprod.db.session import Database
from sqlalchemy import func, select, update

from tests.unit.db.test_tasks import setup


def test_files_catalogued_before_the_start_are_attached_once(database: Database) -> None:
    tid = setup(database, {"group_size": 1}, 0)
    with database.session_scope() as session:
        session.execute(update(Transformation).where(Transformation.id == tid).values(status="New"))
        catalog.register_files(
            session=session,
            files=[catalog.FileInput(lfn=f"/early{i}", metadata={"datatype": "raw", "run": i}) for i in range(3)]
            + [catalog.FileInput(lfn="/other", metadata={"datatype": "sim", "run": 0})],
        )
        session.execute(update(Transformation).where(Transformation.id == tid).values(status="Active"))
    agent = InputAgent(startup_lookback_ids=0)
    with database.session_scope() as session:
        assert agent.run_once(session) == "attached 3 files"
    with database.session_scope() as session:
        assert agent.run_once(session) == "idle"
    with database.session_scope(readonly=True) as session:
        statuses = list(
            session.scalars(select(TransformationFile.status).where(TransformationFile.transformation_id == tid))
        )
        assert statuses == ["Unused"] * 3
        assert session.scalar(select(func.count()).select_from(TransformationFile)) == 3


def test_a_large_backfill_goes_window_by_window_and_wakes_itself(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most BACKFILL_IDS_PER_CYCLE catalog ids a cycle: a cycle that stopped short of the
    catalog's top says more are due and wakes the next cycle itself ("input_due"); together
    the cycles attach exactly the matching files, once."""
    monkeypatch.setattr(input_agent, "BACKFILL_IDS_PER_CYCLE", 3)
    tid = setup(database, {"group_size": 1}, 0)
    with database.session_scope() as session:
        session.execute(update(Transformation).where(Transformation.id == tid).values(status="New"))
        catalog.register_files(
            session=session,
            files=[
                catalog.FileInput(lfn=f"/f{i}", metadata={"datatype": "raw" if i % 4 else "sim", "run": i})
                for i in range(8)
            ],
        )
        session.execute(update(Transformation).where(Transformation.id == tid).values(status="Active"))
    agent = InputAgent(startup_lookback_ids=0)
    assert "input_due" in agent.wakes_on
    seen = []
    for _ in range(3):
        with database.session_scope() as session:
            seen.append((agent.run_once(session), agent.produced()))
    # ids 1-3 (/f0 is sim), 4-6 (/f4 is sim), 7-8
    assert seen == [
        ("attached 2 files (more due)", frozenset({"files", "input_due"})),
        ("attached 2 files (more due)", frozenset({"files", "input_due"})),
        ("attached 2 files", frozenset({"files"})),
    ]
    with database.session_scope() as session:
        assert agent.run_once(session) == "idle"
    with database.session_scope(readonly=True) as session:
        lfns = session.scalars(
            select(catalog.CatalogFile.lfn)
            .join(TransformationFile, TransformationFile.file_id == catalog.CatalogFile.id)
            .where(TransformationFile.transformation_id == tid)
            .order_by(catalog.CatalogFile.id)
        ).all()
    assert lfns == ["/f1", "/f2", "/f3", "/f5", "/f6", "/f7"]
