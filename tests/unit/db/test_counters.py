"""The status counters' bookkeeping (db.counters): deltas reach the table once, at commit, in
the transaction that made them; a savepoint or transaction rolled back leaves no trace; a
reader sees its own transaction's moves. (Every test's database is also checked against a
scan at teardown: tests/conftest.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from metaprod.db import counters
from metaprod.db.models import StatusCounter
from metaprod.db.session import Database
from sqlalchemy import delete


@pytest.fixture(autouse=True)
def _no_rows_behind(database: Database) -> Iterator[None]:
    """These counts stand for no real rows: wiped before the teardown's check against a scan."""
    yield
    with database.session_scope() as session:
        session.execute(delete(StatusCounter))


def _kept(database: Database) -> dict[int, dict[str, dict[str, int]]]:
    with database.session_scope(readonly=True) as session:
        return counters.counts(session)


def test_moves_add_up_across_transactions(database: Database) -> None:
    with database.session_scope() as session:
        counters.record(session, counters.TASK, 7, "Created", 5)
    with database.session_scope() as session:
        counters.record_move(session, counters.TASK, 7, "Created", "Submitted", 3)
        counters.record_moves(session, counters.TASK, [(7, "Submitted", "Running", 2), (8, "Created", "Done", 0)])
        # A reader in the same transaction sees its moves.
        assert counters.counts(session, [7]) == {7: {"task": {"Created": 2, "Submitted": 1, "Running": 2}}}
    assert _kept(database) == {7: {"task": {"Created": 2, "Submitted": 1, "Running": 2}}}


def test_rolled_back_savepoint_and_transaction_leave_nothing(database: Database) -> None:
    with database.session_scope() as session:
        counters.record(session, counters.FILE, 3, "Unused", 4)
        with pytest.raises(RuntimeError), session.begin_nested():
            counters.record(session, counters.FILE, 3, "Unused", 100)
            raise RuntimeError("refused")
        with session.begin_nested():
            counters.record(session, counters.FILE, 3, "Unused", 1)
    assert _kept(database) == {3: {"file": {"Unused": 5}}}
    with pytest.raises(RuntimeError), database.session_scope() as session:
        counters.record(session, counters.FILE, 3, "Unused", 1000)
        raise RuntimeError("rolled back")
    with database.session_scope() as session:
        pass  # a new transaction on a new session: nothing pending
    assert _kept(database) == {3: {"file": {"Unused": 5}}}


def test_drop_forgets_pending_and_stored_counts(database: Database) -> None:
    with database.session_scope() as session:
        counters.record(session, counters.TASK, 1, "Done", 2)
        counters.record(session, counters.TASK, 2, "Done", 2)
    with database.session_scope() as session:
        counters.record(session, counters.TASK, 1, "Done", -1)
        counters.drop(session, [1])
    assert _kept(database) == {2: {"task": {"Done": 2}}}
