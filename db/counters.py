"""Status counters: how many tasks and transformation files each transformation has in each
status (and how many of its tasks were reused), kept in `status_counters` by the transactions
that change those statuses, so that summaries (`production list`, `production progress`,
the dashboard, /metrics) read a few rows per transformation instead of scanning millions.

Every writer of a task or file status records its moves here as deltas; the deltas of a
transaction are added to the counters once, just before it commits (a `before_commit` hook),
in one multi-row upsert sorted by key. One statement per transaction whatever its size, and
on MariaDB every transaction takes its counter-row locks last, in the same global order, and
holds them only for the commit: the counter rows are hot (each finalize and report batch of
every process touches those of its transformations), this keeps them from deadlocking and
keeps the time they are held short. A savepoint rolled back drops its deltas.

How a writer records a move, cheapest first:
- its old status is pinned (WHERE status = X) and it touches one transformation: the
  statement's rowcount (`record_move`);
- rows it already holds locked, with their status: counted in Python (`record_move`);
- ORM objects whose status changes (or that are added or deleted): the `before_flush` hook;
- otherwise `count_moves` first counts, with the UPDATE's own condition, the rows by
  transformation and old status (one grouped, locking SELECT on MariaDB so the UPDATE moves
  exactly the rows counted).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from metaprod.core.statuses import AttemptStatus
from metaprod.db.models import CatalogFile, JobAttempt, StatusCounter, Task, TransformationFile
from sqlalchemy import ColumnElement, Table, delete, event, func, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.attributes import get_history

What = Literal["task", "file", "reused", "attempt", "catalog"]
TASK: What = "task"
FILE: What = "file"
REUSED: What = "reused"  # tasks Done by reuse (status "Done": the only one they get)
ATTEMPT: What = "attempt"  # ended attempts by outcome (an ended attempt never changes)
CATALOG: What = "catalog"  # transformation 0, status "files": the files in the catalog
REUSED_STATUS = "Done"
CATALOG_FILES = "files"
FINISHED_ATTEMPTS = (
    AttemptStatus.DONE.value,
    AttemptStatus.FAILED.value,
    AttemptStatus.LOST.value,
    AttemptStatus.KILLED.value,
)
Key = tuple[int, str, str]  # (transformation id, what, status)

COUNTERS: Table = StatusCounter.__table__  # type: ignore[assignment]
_PENDING = "metaprod_counter_deltas"  # session.info: {transaction: {key: delta}}


def _frames(session: Session) -> dict[SessionTransaction, dict[Key, int]]:
    return session.info.setdefault(_PENDING, {})  # type: ignore[no-any-return]


def _frame(session: Session) -> dict[Key, int]:
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:  # no statement yet: begin the transaction the deltas belong to
        session.connection()
        transaction = session.get_transaction()
        assert transaction is not None
    return _frames(session).setdefault(transaction, {})


def record(session: Session, what: What, transformation_id: int, status: str, delta: int) -> None:
    if delta:
        frame = _frame(session)
        key = (int(transformation_id), what, status)
        frame[key] = frame.get(key, 0) + delta


def record_move(session: Session, what: What, transformation_id: int, old: str, new: str, n: int = 1) -> None:
    if n and old != new:
        record(session, what, transformation_id, old, -n)
        record(session, what, transformation_id, new, n)


def record_moves(session: Session, what: What, moves: Iterable[tuple[int, str, str, int]]) -> None:
    """(transformation id, old status, new status, rows) for each group of moved rows."""
    for tid, old, new, n in moves:
        record_move(session, what, tid, old, new, n)


def count_moves(session: Session, what: What, where: ColumnElement[bool], new: str) -> None:
    """Record the moves to `new` of the rows matching `where`, counted before the UPDATE that
    moves them (same condition). Rows already in `new` do not move."""
    model: Any = Task if what == TASK else TransformationFile
    stmt = (
        select(model.transformation_id, model.status, func.count())
        .where(where, model.status != new)
        .group_by(model.transformation_id, model.status)
    )
    if session.get_bind().dialect.name in {"mysql", "mariadb"}:
        # A locking read: the UPDATE that follows moves exactly these rows.
        stmt = stmt.with_for_update()
    record_moves(session, what, [(tid, old, new, int(n)) for tid, old, n in session.execute(stmt)])


def count_removal(session: Session, what: What, where: ColumnElement[bool]) -> None:
    """Record that the rows matching `where` go (counted before the DELETE that removes them)."""
    model: Any = Task if what == TASK else TransformationFile
    stmt = (
        select(model.transformation_id, model.status, func.count())
        .where(where)
        .group_by(model.transformation_id, model.status)
    )
    if session.get_bind().dialect.name in {"mysql", "mariadb"}:
        stmt = stmt.with_for_update()
    for tid, status, n in session.execute(stmt):
        record(session, what, tid, status, -int(n))


def drop(session: Session, transformation_ids: Iterable[int]) -> None:
    """Forget the counts of transformations whose tasks and files are all gone (cleaning)."""
    ids = sorted(set(transformation_ids))
    if not ids:
        return
    for frame in _frames(session).values():
        for key in [k for k in frame if k[0] in ids]:
            del frame[key]
    session.execute(delete(StatusCounter).where(StatusCounter.transformation_id.in_(ids)))


def apply_pending(session: Session) -> int:
    """Add this transaction's deltas to the counters (one upsert); readers call it so that
    they see their own transaction's moves. Returns the number of counter rows touched."""
    frames = session.info.get(_PENDING)
    if not frames:
        return 0
    total: dict[Key, int] = {}
    for frame in frames.values():
        for key, delta in frame.items():
            total[key] = total.get(key, 0) + delta
        frame.clear()
    rows = [{"transformation_id": k[0], "what": k[1], "status": k[2], "n": d} for k, d in sorted(total.items()) if d]
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        lite = sqlite_insert(COUNTERS)
        stmt: Any = lite.on_conflict_do_update(
            index_elements=list(COUNTERS.primary_key), set_={"n": COUNTERS.c.n + lite.excluded.n}
        )
    else:
        maria = mysql_insert(COUNTERS)
        stmt = maria.on_duplicate_key_update(n=COUNTERS.c.n + maria.inserted.n)
    # One multi-row statement (sorted: every transaction locks counter rows in one order).
    session.execute(stmt.values(rows))
    return len(rows)


def counts(session: Session, transformation_ids: Iterable[int] | None = None) -> dict[int, dict[str, dict[str, int]]]:
    """{transformation id: {what: {status: count}}} (zero counts left out); all when no ids."""
    apply_pending(session)
    rows: Iterable[tuple[int, str, str, int]]
    if transformation_ids is None:
        rows = _all_rows(session)
    else:
        ids = list(transformation_ids)
        if not ids:
            return {}
        rows = session.execute(
            select(StatusCounter.transformation_id, StatusCounter.what, StatusCounter.status, StatusCounter.n).where(
                StatusCounter.n != 0, StatusCounter.transformation_id.in_(ids)
            )
        )  # type: ignore[assignment]
    result: dict[int, dict[str, dict[str, int]]] = {}
    # Integer columns come as int from both drivers; no setdefault (it builds a dict a row):
    # the summaries read every counter row (tens of thousands at 1,000 productions).
    for tid, what, status, n in rows:
        per = result.get(tid)
        if per is None:
            per = result[tid] = {}
        by_status = per.get(what)
        if by_status is None:
            by_status = per[what] = {}
        by_status[status] = n
    return result


# Plain columns, the same text on SQLite and MariaDB.
_ALL_ROWS = "SELECT transformation_id, what, status, n FROM status_counters WHERE n <> 0"


def _all_rows(session: Session) -> list[tuple[int, str, str, int]]:
    """Every counter row through the driver's cursor (in the session's transaction): the
    summaries read them all, and SQLAlchemy's result rows cost as much as the query (half the
    time of the summary's largest read at 1,000 productions)."""
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_ALL_ROWS)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def scan(session: Session) -> dict[int, dict[str, dict[str, int]]]:
    """What the counters should hold, by scanning the tasks and files (tests, `backfill`)."""
    result: dict[int, dict[str, dict[str, int]]] = {}
    for what, model in ((TASK, Task), (FILE, TransformationFile)):
        m: Any = model
        for tid, status, n in session.execute(
            select(m.transformation_id, m.status, func.count()).group_by(m.transformation_id, m.status)
        ):
            result.setdefault(int(tid), {}).setdefault(what, {})[status] = int(n)
    for tid, n in session.execute(
        select(Task.transformation_id, func.count())
        .where(Task.reused_from.is_not(None))
        .group_by(Task.transformation_id)
    ):
        result.setdefault(int(tid), {}).setdefault(REUSED, {})[REUSED_STATUS] = int(n)
    for tid, status, n in session.execute(
        select(Task.transformation_id, JobAttempt.status, func.count())
        .join(Task, Task.id == JobAttempt.task_id)
        .where(JobAttempt.status.in_(FINISHED_ATTEMPTS))
        .group_by(Task.transformation_id, JobAttempt.status)
    ):
        result.setdefault(int(tid), {}).setdefault(ATTEMPT, {})[status] = int(n)
    files = int(session.scalar(select(func.count()).select_from(CatalogFile)) or 0)
    if files:
        result[0] = {CATALOG: {CATALOG_FILES: files}}
    return result


# --- hooks --------------------------------------------------------------------------------


def _orm_changes(session: Session, *_: Any) -> None:
    """Status changes made through ORM objects (fail_attempt, end_attempt, tests)."""
    for obj in session.new:
        if isinstance(obj, Task | TransformationFile) and obj.status is not None:
            what: What = TASK if isinstance(obj, Task) else FILE
            record(session, what, obj.transformation_id, obj.status, 1)
            if isinstance(obj, Task) and obj.reused_from is not None:
                record(session, REUSED, obj.transformation_id, REUSED_STATUS, 1)
    for obj in session.dirty:
        if isinstance(obj, Task | TransformationFile):
            history = get_history(obj, "status")
            if history.has_changes() and history.deleted:
                what = TASK if isinstance(obj, Task) else FILE
                record_move(session, what, obj.transformation_id, history.deleted[0], obj.status)
    for obj in session.deleted:
        if isinstance(obj, Task | TransformationFile):
            what = TASK if isinstance(obj, Task) else FILE
            record(session, what, obj.transformation_id, obj.status, -1)


def _before_commit(session: Session) -> None:
    session.flush()  # ORM changes first: the flush hook records their moves
    apply_pending(session)


def _transaction_end(session: Session, transaction: SessionTransaction) -> None:
    frames: Mapping[SessionTransaction, dict[Key, int]] | None = session.info.get(_PENDING)
    if transaction.parent is None:  # the transaction ended: committed (applied) or rolled back
        session.info.pop(_PENDING, None)
        session.info.pop(_ROLLED_BACK, None)
        return
    if not frames or transaction not in frames:
        return
    frame = frames.pop(transaction)  # type: ignore[attr-defined]
    if transaction.nested and not _rolled_back(transaction):
        parent = session.info[_PENDING].setdefault(_nearest_recording(transaction.parent), {})
        for key, delta in frame.items():
            parent[key] = parent.get(key, 0) + delta


def _nearest_recording(transaction: SessionTransaction) -> SessionTransaction:
    # Deltas live on savepoints and on the root transaction (where _frame puts them).
    while not transaction.nested and transaction.parent is not None:
        transaction = transaction.parent
    return transaction


_ROLLED_BACK = "metaprod_rolled_back"


def _rollback(session: Session) -> None:
    # Fires (before after_transaction_end) for the savepoint or transaction being rolled back.
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is not None:
        session.info.setdefault(_ROLLED_BACK, set()).add(id(transaction))


def _rolled_back(transaction: SessionTransaction) -> bool:
    session = transaction.session
    return id(transaction) in session.info.get(_ROLLED_BACK, set())


event.listen(Session, "before_flush", _orm_changes)
event.listen(Session, "before_commit", _before_commit)
event.listen(Session, "after_transaction_end", _transaction_end)
event.listen(Session, "after_rollback", _rollback)
