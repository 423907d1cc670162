"""Per-row values in one UPDATE, on a real database (SQLite or MariaDB)."""

from __future__ import annotations

from typing import Any

import pytest
from metaprod.db import bulk
from metaprod.db.bulk import row_values
from metaprod.db.session import Database
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, event, select, update

PROBE = Table(
    "bulk_probe",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String(32)),
    Column("doc", JSON),
    Column("version", Integer, default=1),
)


def rows(database: Database) -> dict[int, tuple[Any, Any]]:
    with database.session_scope(readonly=True) as session:
        query = select(PROBE.c.id, PROBE.c.name, PROBE.c.doc).order_by(PROBE.c.id)
        return {i: (name, doc) for i, name, doc in session.execute(query)}


@pytest.fixture
def probe(database: Database) -> Database:
    PROBE.create(database.engine)
    with database.session_scope() as session:
        session.execute(PROBE.insert(), [{"id": i, "name": "before", "doc": None, "version": 1} for i in range(1, 7)])
    return database


def test_each_row_gets_its_own_value_in_one_statement(probe: Database) -> None:
    names = {1: "a", 2: "b", 3: "b", 4: None, 5: "b"}
    docs = {1: {"x": [1, 2]}, 2: {"x": [1, 2]}, 3: {"y": "z"}, 4: {"x": [1, 2]}, 5: None}
    statements = updates_counted(probe)
    with probe.session_scope() as session:
        session.execute(
            update(PROBE)
            .where(PROBE.c.id.in_(list(names)))
            .values(name=row_values(PROBE.c.name, PROBE.c.id, names), doc=row_values(PROBE.c.doc, PROBE.c.id, docs))
        )
    assert len(statements) == 1
    after = rows(probe)
    assert {i: after[i][0] for i in names} == names
    assert {i: after[i][1] for i in docs} == docs
    assert after[6] == ("before", None)  # not selected: untouched


def test_rows_that_all_agree_get_a_plain_value(probe: Database) -> None:
    value = row_values(PROBE.c.name, PROBE.c.id, {1: "same", 2: "same"})
    assert "CASE" not in str(value)
    with probe.session_scope() as session:
        session.execute(update(PROBE).where(PROBE.c.id.in_([1, 2])).values(name=value))
    assert [name for name, _ in rows(probe).values()] == ["same", "same", "before", "before", "before", "before"]


def test_no_rows_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        row_values(PROBE.c.name, PROBE.c.id, {})


def updates_counted(database: Database) -> list[str]:
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    return statements


def test_update_rows_chunks_and_matches(probe: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "CHUNK", 2)
    statements = updates_counted(probe)
    with probe.session_scope() as session:
        bulk.update_rows(
            session,
            PROBE,
            [1, 2, 3, 4, 5],
            own={"name": {i: f"n{i}" for i in range(1, 6)}},
            match={"version": {1: 1, 2: 1, 3: 2, 4: 1, 5: 1}},  # row 3 is not at version 2
            doc={"same": True},
        )
        bulk.update_rows(session, PROBE, [], own={"name": {}})  # nothing to do: no statement
    assert len(statements) == 3  # five rows, two a statement
    after = rows(probe)
    assert {i: after[i][0] for i in after} == {1: "n1", 2: "n2", 3: "before", 4: "n4", 5: "n5", 6: "before"}
    assert [after[i][1] for i in (1, 3, 6)] == [{"same": True}, None, None]
