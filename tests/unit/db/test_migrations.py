"""Alembic migrations: the head schema is exactly the models, and the at-head check that every
process makes before it starts refuses a database that was never upgraded."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from metaprod.db.migrate import SchemaNotAtHead, current_revision, ensure_at_head, head_revision, upgrade
from metaprod.db.models import Base
from metaprod.db.session import Database


def test_migrations_at_head_match_the_models(database: Database) -> None:
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], "the models and the migrations differ; add a migration:\n" + "\n".join(map(repr, diff))


def test_ensure_at_head_passes_after_upgrade(database: Database) -> None:
    head = head_revision(database)
    assert head is not None
    assert current_revision(database) == head
    ensure_at_head(database)


def test_ensure_at_head_refuses_an_empty_database(tmp_path: Path) -> None:
    empty = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert current_revision(empty) is None
        with pytest.raises(SchemaNotAtHead, match="metaprod db upgrade") as caught:
            ensure_at_head(empty)
        head = head_revision(empty)
        assert head is not None and head in str(caught.value)
    finally:
        empty.dispose()


def test_a_url_with_percent_signs_migrates(tmp_path: Path) -> None:
    # e.g. mysql://root@localhost/db?unix_socket=%2Frun%2Fmysqld%2Fmysqld.sock
    database = Database(f"sqlite:///{tmp_path / 'a%25b.db'}")
    try:
        upgrade(database)
        ensure_at_head(database)
    finally:
        database.dispose()
