"""The input agent's cycle on a real database: files catalogued before their transformation
was started are attached by the back-fill scan, once."""

from __future__ import annotations

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
