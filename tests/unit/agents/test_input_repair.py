"""The input agent repairs the registration/watermark race by itself: files committed below
a watermark (a registration in flight during the scan) are attached when the window is
re-checked, and a restarted agent re-checks the last ids below every watermark."""

from __future__ import annotations

from metaprod.agents.input import InputAgent
from metaprod.db import catalog, counters
from metaprod.db.models import Transformation, TransformationFile
from metaprod.db.session import Database
from sqlalchemy import delete, func, select, update

from tests.unit.db.test_tasks import setup


def attached(database: Database, tid: int) -> int:
    with database.session_scope(readonly=True) as session:
        return int(
            session.scalar(
                select(func.count()).select_from(TransformationFile).where(TransformationFile.transformation_id == tid)
            )
            or 0
        )


def register_missed(database: Database, tid: int, lfns: list[str]) -> None:
    """What the race leaves behind: files that no routing saw, below the watermark."""
    with database.session_scope() as session:
        session.execute(update(Transformation).where(Transformation.id == tid).values(status="New"))
    with database.session_scope() as session:
        catalog.register_files(
            session=session, files=[catalog.FileInput(lfn=lfn, metadata={"datatype": "raw", "run": 1}) for lfn in lfns]
        )
        top = session.scalar(select(func.max(catalog.CatalogFile.id)))
        session.execute(
            update(Transformation).where(Transformation.id == tid).values(status="Active", input_watermark=top)
        )


def test_windows_are_rechecked_after_a_delay(database: Database) -> None:
    tid = setup(database, {"group_size": 1}, 2)
    register_missed(database, tid, [])  # Active, watermark at the top
    with database.session_scope() as session:
        session.execute(update(Transformation).where(Transformation.id == tid).values(status="New"))
        catalog.register_files(
            session=session, files=[catalog.FileInput(lfn="/late", metadata={"datatype": "raw", "run": 1})]
        )
        session.execute(update(Transformation).where(Transformation.id == tid).values(status="Active"))
    now = [0.0]
    agent = InputAgent(recheck_seconds=30.0, startup_lookback_ids=0, clock=lambda: now[0])
    with database.session_scope() as session:
        assert agent.run_once(session) == "attached 1 files"
    # Suppose "/late" was not visible yet to that scan (its registration committed just after):
    with database.session_scope() as session:
        late = session.scalar(select(catalog.CatalogFile.id).where(catalog.CatalogFile.lfn == "/late"))
        # (The counters forget it too, as if it had never been attached.)
        counters.count_removal(session, counters.FILE, TransformationFile.file_id == late)
        session.execute(delete(TransformationFile).where(TransformationFile.file_id == late))
    now[0] = 10.0
    with database.session_scope() as session:
        assert agent.run_once(session) == "idle"  # not due yet
    now[0] = 31.0
    with database.session_scope() as session:
        assert agent.run_once(session) == "repaired 1 missed attachments"
    assert attached(database, tid) == 3 and not agent.pending


def test_a_restarted_agent_rechecks_below_every_watermark(database: Database) -> None:
    tid = setup(database, {"group_size": 1}, 2)
    assert attached(database, tid) == 2
    register_missed(database, tid, ["/missed1", "/missed2"])
    # The watermark is past the missed files: a plain scan does not see them.
    old = InputAgent(startup_lookback_ids=0)
    with database.session_scope() as session:
        assert old.run_once(session) == "idle"
    assert attached(database, tid) == 2
    fresh = InputAgent(startup_lookback_ids=1000)
    with database.session_scope() as session:
        assert fresh.run_once(session) == "repaired 2 missed attachments"
    assert attached(database, tid) == 4
    with database.session_scope() as session:
        assert fresh.run_once(session) == "idle"  # idempotent
