"""Shared fixtures: a fresh real database per test (SQLite, or MariaDB when
METAPROD_TEST_DB names a server), a real gRPC server on a free port, an admin token."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from metaprod.db import counters
from metaprod.db.migrate import upgrade
from metaprod.db.session import Database
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

# "sqlite" (default) or a server URL such as mysql://root@127.0.0.1:3306
TEST_DB = os.environ.get("METAPROD_TEST_DB", "sqlite")


def check_counters(url: str) -> None:
    """Every test's database ends with status counters equal to a real scan of the tasks,
    files and attempts (db.counters): whatever the test did (pipelines with failures,
    retries, reuse, extend, delete, reset), no writer forgot to count a move."""
    db = Database(url)
    try:
        with db.session_scope(readonly=True) as session:
            if not inspect(session.connection()).has_table("status_counters"):
                return
            kept, scanned = counters.counts(session), counters.scan(session)
            assert kept == scanned, f"status counters {kept} differ from a scan {scanned}"
    finally:
        db.dispose()


def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a new empty database and remove it afterwards (after checking its
    status counters against a scan)."""
    if TEST_DB == "sqlite":
        url = f"sqlite:///{tmp_path / 'metaprod.db'}"
        yield url
        if (tmp_path / "metaprod.db").exists():
            check_counters(url)
        return
    server = make_url(TEST_DB)
    name = f"mp_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server.set(database=""))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        yield url
        check_counters(url)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    yield from fresh_database_url(tmp_path)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    upgrade(db)
    try:
        yield db
    finally:
        db.dispose()
