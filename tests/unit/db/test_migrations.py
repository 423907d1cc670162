"""Alembic migrations: the head schema is exactly the models, and the at-head check that every
process makes before it starts refuses a database that was never upgraded."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from metaprod.db.migrate import SchemaNotAtHead, current_revision, ensure_at_head, head_revision, upgrade
from metaprod.db.models import Base
from metaprod.db.session import Database
from sqlalchemy import text


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


def test_0005_backfills_owners_and_namespaces(database_url: str) -> None:
    """Produced files get their production's owner, imported ones none (admin only); each
    production the namespace its outputs were written under until then (name, name@2...)."""
    db = Database(database_url)
    try:
        upgrade(db, "0004")
        now = datetime(2026, 1, 1)
        with db.engine.begin() as conn:
            for pid, name, owner, live in ((1, "p", "bob", None), (2, "p", "carol", "p"), (3, "q", "bob", "q")):
                conn.execute(
                    text(
                        "INSERT INTO productions (id, name, live_name, description, status, owner, spec,"
                        " purge_outputs, created_at, updated_at)"
                        " VALUES (:id, :name, :live, '', 'New', :owner, '{}', 0, :now, :now)"
                    ),
                    {"id": pid, "name": name, "live": live, "owner": owner, "now": now},
                )
            for fid, lfn, producer in ((1, "/raw/a", None), (2, "/p@2/gen/000000/o", 2)):
                conn.execute(
                    text(
                        "INSERT INTO files (id, lfn, pfn, size, checksum, producer_production_id, created_at)"
                        " VALUES (:id, :lfn, '', 0, '', :producer, :now)"
                    ),
                    {"id": fid, "lfn": lfn, "producer": producer, "now": now},
                )
        upgrade(db)
        with db.engine.connect() as conn:
            owners = dict(conn.execute(text("SELECT lfn, owner FROM files")).all())
            namespaces = dict(conn.execute(text("SELECT id, namespace FROM productions")).all())
            expiries = conn.execute(text("SELECT COUNT(*) FROM api_tokens WHERE expires_at IS NOT NULL")).scalar()
        assert owners == {"/raw/a": None, "/p@2/gen/000000/o": "carol"}
        assert namespaces == {1: "p", 2: "p@2", 3: "q"}
        assert expiries == 0
    finally:
        db.dispose()


def test_a_url_with_percent_signs_migrates(tmp_path: Path) -> None:
    # e.g. mysql://root@localhost/db?unix_socket=%2Frun%2Fmysqld%2Fmysqld.sock
    database = Database(f"sqlite:///{tmp_path / 'a%25b.db'}")
    try:
        upgrade(database)
        ensure_at_head(database)
    finally:
        database.dispose()
