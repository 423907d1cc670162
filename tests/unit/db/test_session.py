"""Transactions that lose to a concurrent one (a deadlock, a lock held too long) come out as
Conflict, which the services answer as ABORTED: retry, not "internal error"."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from metaprod.core.errors import Conflict
from metaprod.db import session as session_module
from metaprod.db.models import AgentHeartbeat
from metaprod.db.session import Database
from sqlalchemy import select, update

from tests.conftest import TEST_DB


def test_sqlite_lock_held_past_the_busy_timeout_is_a_conflict(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(session_module, "SQLITE_BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "locked.db"
    database = Database(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(Conflict, match=r"retry.*database is locked"), database.session_scope() as session:
            session.execute(update(AgentHeartbeat).values(stopped=True))
    finally:
        other.close()
        database.dispose()


@pytest.mark.skipif(TEST_DB == "sqlite", reason="a deadlock needs row locks (MariaDB)")
def test_mariadb_deadlock_is_a_conflict_and_changes_nothing(database: Database) -> None:
    with database.session_scope() as session:
        session.add_all([AgentHeartbeat(name=n, host="h", pid=1, last_status="") for n in ("a", "b")])
    both_locked = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def update_in_order(first: str, second: str) -> None:
        try:
            with database.session_scope() as session:
                for name in (first, second):
                    session.execute(update(AgentHeartbeat).where(AgentHeartbeat.name == name).values(last_status=first))
                    if name == first:
                        both_locked.wait()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=update_in_order, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    # One of the two was chosen as the deadlock's victim; the other committed both rows.
    assert len(errors) == 1 and isinstance(errors[0], Conflict), errors
    assert "retry" in str(errors[0])
    with database.session_scope(readonly=True) as session:
        statuses = dict(session.execute(select(AgentHeartbeat.name, AgentHeartbeat.last_status)).all())
    assert len(set(statuses.values())) == 1  # the winner's, on both rows
