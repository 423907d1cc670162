"""Data cycles on a real database: the ancestry of produced files (computed at registration,
and by revision 0003 for files produced before it), and routing and backfill skipping a file
for the transformations in its ancestry, recording it."""

from __future__ import annotations

from typing import Any

from alembic import command
from metaprod.db import ancestry, catalog, counters, routing
from metaprod.db.catalog import FileInput
from metaprod.db.migrate import alembic_config, upgrade
from metaprod.db.models import (
    FileAncestry,
    Production,
    SkippedFile,
    Task,
    TaskInput,
    Transformation,
    TransformationFile,
)
from metaprod.db.session import Database
from sqlalchemy import delete, inspect, select, text
from sqlalchemy.orm import Session

RAW = {"datatype": "raw"}


def transformation(session: Session, production: Production, name: str, status: str = "Active") -> int:
    t = Transformation(
        production_id=production.id, name=name, status=status, spec={}, input_query=RAW,
        output_query=None, output_metadata=None, command="true",
    )  # fmt: skip
    session.add(t)
    session.flush()
    return t.id


def task(session: Session, tid: int, index: int, inputs: list[int]) -> int:
    k = Task(transformation_id=tid, task_index=index, status="Running", attempt=1)
    session.add(k)
    session.flush()
    session.add_all(TaskInput(task_id=k.id, position=i, file_id=fid) for i, fid in enumerate(inputs))
    session.flush()
    return k.id


def file_id(session: Session, lfn: str) -> int:
    return int(session.scalar(select(catalog.CatalogFile.id).where(catalog.CatalogFile.lfn == lfn)) or 0)


def lineage(session: Session) -> dict[str, set[int]]:
    rows = session.execute(
        select(catalog.CatalogFile.lfn, FileAncestry.transformation_id).join(
            FileAncestry, FileAncestry.file_id == catalog.CatalogFile.id
        )
    )
    out: dict[str, set[int]] = {}
    for lfn, tid in rows:
        out.setdefault(lfn, set()).add(tid)
    return out


def pairs(session: Session, model: Any) -> set[tuple[int, int]]:
    return {(t, f) for t, f in session.execute(select(model.transformation_id, model.file_id))}


def build(database: Database) -> dict[str, int]:
    """a and b take raw files; a makes /a/o1 from /f0, b makes /b/o2 from /a/o1: all raw."""
    with database.session_scope() as session:
        catalog.add_field(session=session, name="datatype", type="str")
        p = Production(name="prod", status="Active", owner="admin", spec={})
        session.add(p)
        session.flush()
        ids = {"a": transformation(session, p, "a"), "b": transformation(session, p, "b")}
        catalog.register_files(session=session, files=[FileInput("/f0", metadata=RAW)])
        ids["f0"] = file_id(session, "/f0")
        ta = task(session, ids["a"], 0, [ids["f0"]])
        catalog.register_files(session=session, files=[FileInput("/a/o1", metadata=RAW)], producer=(ta, 1))
        ids["o1"] = file_id(session, "/a/o1")
        tb = task(session, ids["b"], 0, [ids["o1"]])
        catalog.register_files(session=session, files=[FileInput("/b/o2", metadata=RAW)], producer=(tb, 1))
        ids["o2"] = file_id(session, "/b/o2")
    return ids


def test_ancestry_is_the_producer_and_the_inputs_ancestries(database: Database) -> None:
    ids = build(database)
    a, b, f0, o1, o2 = (ids[k] for k in ("a", "b", "f0", "o1", "o2"))
    with database.session_scope(readonly=True) as session:
        assert lineage(session) == {"/a/o1": {a}, "/b/o2": {a, b}}  # imported files have none
        # At registration: o1 went to b only, o2 to neither; both recorded as skipped.
        assert pairs(session, TransformationFile) == {(a, f0), (b, f0), (b, o1)}
        assert pairs(session, SkippedFile) == {(a, o1), (a, o2), (b, o2)}
        assert ancestry.skipped_counts(session=session, transformation_ids=[a, b]) == {a: 2, b: 1}


def test_backfill_and_metadata_updates_skip_the_same_files(database: Database) -> None:
    ids = build(database)
    a, b, f0, o1, o2 = (ids[k] for k in ("a", "b", "f0", "o1", "o2"))
    with database.session_scope() as session:
        counters.count_removal(session, counters.FILE, TransformationFile.file_id.is_not(None))
        session.execute(delete(TransformationFile))
        session.execute(delete(SkippedFile))
        assert routing.backfill_transformation(session=session, transformation_id=a) == 1
        assert routing.backfill_transformation(session=session, transformation_id=b) == 2
        catalog.set_metadata(session=session, lfn="/b/o2", metadata=RAW)
        p = session.scalars(select(Production)).one()
        c = transformation(session, p, "c")  # in no ancestry: takes everything
        assert routing.backfill_transformation(session=session, transformation_id=c) == 3
    with database.session_scope(readonly=True) as session:
        assert pairs(session, TransformationFile) == {(a, f0), (b, f0), (b, o1), (c, f0), (c, o1), (c, o2)}
        assert pairs(session, SkippedFile) == {(a, o1), (a, o2), (b, o2)}


def test_revision_0003_computes_the_ancestry_of_files_produced_before_it(database: Database) -> None:
    build(database)
    with database.session_scope(readonly=True) as session:
        before = lineage(session)
    with database.engine.begin() as connection:
        config = alembic_config(database)
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
        assert "file_ancestry" not in inspect(connection).get_table_names()
    with database.engine.begin() as connection:  # provenance as revision 0002 keeps it
        connection.execute(text("DELETE FROM file_inputs"))
        connection.execute(
            text(
                "INSERT INTO file_inputs (file_id, position, input_file_id) SELECT f.id, i.position, i.file_id "
                "FROM files f JOIN task_inputs i ON i.task_id = f.producer_task_id"
            )
        )
    upgrade(database)
    with database.session_scope(readonly=True) as session:
        assert lineage(session) == before
