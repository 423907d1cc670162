"""Engines and transactions: the one `session_scope()` every RPC and agent cycle opens.

Nothing is built at import: a `Database` is made from a URL by the process that needs it.
SQLite is tuned on purpose (WAL, busy timeout, foreign keys, `BEGIN IMMEDIATE` for writers so
that a read-then-write transaction never fails upgrading its lock); MariaDB/MySQL goes
through mysqlclient with utf8mb4, InnoDB and pool_pre_ping.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metaprod.core.errors import Conflict, FailedPrecondition, Unavailable
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Connections per process: POOL_SIZE kept open, up to POOL_OVERFLOW more under load. A call
# that finds none free within POOL_TIMEOUT_SECONDS fails at once as UNAVAILABLE ("retry"),
# instead of hanging. No RPC holds a connection while it waits on its client (streams read
# batch by batch, each in its own short session), so the pool only has to cover the calls
# being worked on: the server's worker threads and the agents.
POOL_SIZE = 10
POOL_OVERFLOW = 30
POOL_TIMEOUT_SECONDS = 5.0
# `metaprod status` (the health check) reports NOT_SERVING when no connection answers within this.
PROBE_TIMEOUT_SECONDS = 2.0
# MariaDB/MySQL client errors of a server that cannot be reached or went away.
MYSQL_GONE_CODES = frozenset({2002, 2003, 2005, 2006, 2013})
MYSQL_DRIVER_HINT = (
    "pip install 'metaprod[mysql]' (it builds mysqlclient, which needs the system packages "
    "libmariadb-dev and pkg-config: apt-get install libmariadb-dev pkg-config)"
)


class MissingDriver(FailedPrecondition):
    """A database URL whose driver is not installed."""


def require_driver(url: URL) -> None:
    """A MariaDB/MySQL URL needs mysqlclient (the `metaprod[mysql]` extra): say what to install."""
    backend = url.get_backend_name()
    mysqldb = backend in {"mysql", "mariadb"} and url.get_driver_name() in {"mysqldb", ""}
    if mysqldb and importlib.util.find_spec("MySQLdb") is None:
        raise MissingDriver(f"a {backend}:// database needs the mysqlclient driver: {MYSQL_DRIVER_HINT}")


def sqlite_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'metaprod.db'}"


class Database:
    """One engine and its session factory for one database URL."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = POOL_SIZE,
        max_overflow: int = POOL_OVERFLOW,
        pool_timeout: float = POOL_TIMEOUT_SECONDS,
    ) -> None:
        self.url = make_url(url)
        require_driver(self.url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.is_mysql = self.url.get_backend_name() in {"mysql", "mariadb"}
        self.pool_timeout = pool_timeout
        kwargs: dict[str, Any] = {"echo": echo}
        in_memory = self.is_sqlite and self.url.database in (None, "", ":memory:")
        if not in_memory:
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout)
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, pool_recycle=3600)
            if self.is_mysql:
                self.url = self.url.update_query_dict({"charset": "utf8mb4"})
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            _tune_sqlite(self.engine)
        elif self.is_mysql:
            _tune_mysql(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # SQLite has one writer at a time. Writers of this process queue on this lock and are
        # handed the database as soon as it is free; on SQLite's own lock a loser sleeps in its
        # busy handler (1, 2, 5, 10... ms), which is most of the latency of small transactions.
        # Other processes still meet on SQLite's lock. Reentrant: a nested writer of one thread
        # fails on the busy timeout as before instead of hanging.
        self._writer = threading.RLock()
        self._probed: tuple[float, str | None] = (0.0, None)

    @contextlib.contextmanager
    def session_scope(self, *, readonly: bool = False) -> Iterator[Session]:
        """One transaction: commit on success, roll back on any exception."""
        queued = self.is_sqlite and not readonly
        if queued:
            self._writer.acquire()
        session = self._sessions()
        try:
            if self.is_sqlite:
                # A writer takes the write lock up front (BEGIN IMMEDIATE): waiting on the
                # busy timeout then is safe, while upgrading a read snapshot later is not.
                session.connection(execution_options={"metaprod_sqlite_begin": "DEFERRED" if readonly else "IMMEDIATE"})
            yield session
            if readonly:
                session.rollback()
            else:
                session.commit()
        except BaseException as exc:
            session.rollback()
            if isinstance(exc, PoolTimeout):
                raise Unavailable(
                    f"the server has no free database connection (none freed within {self.pool_timeout:g} s: "
                    "every one is in use); retry shortly"
                ) from exc
            if isinstance(exc, OperationalError) and database_gone(exc):
                raise Unavailable(f"the database cannot be reached, retry later: {exc.orig}") from exc
            if isinstance(exc, OperationalError) and lost_to_a_concurrent_transaction(exc):
                # A retry may well succeed: say so (ABORTED over gRPC), not "internal error".
                raise Conflict(
                    f"the database gave this transaction up for a concurrent one, retry: {exc.orig}"
                ) from exc
            raise
        finally:
            session.close()
            if queued:
                self._writer.release()

    def dispose(self) -> None:
        self.engine.dispose()

    def probe(self, timeout: float = PROBE_TIMEOUT_SECONDS) -> str | None:
        """None when a connection answers `SELECT 1` within `timeout` seconds, else why not.
        Remembered for half a second, so health checks under load cost one probe."""
        at, reason = self._probed
        if time.monotonic() - at < 0.5:
            return reason
        outcome: list[str | None] = []

        def attempt() -> None:
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
                outcome.append(None)
            except PoolTimeout:
                outcome.append("no free database connection")
            except Exception as exc:
                outcome.append(f"the database does not answer: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")

        worker = threading.Thread(target=attempt, name="metaprod-db-probe", daemon=True)
        worker.start()
        worker.join(timeout)
        reason = outcome[0] if outcome else f"no database connection within {timeout:g} s"
        self._probed = (time.monotonic(), reason)
        return reason


# MariaDB/MySQL: lock wait timeout, deadlock.
MYSQL_CONTENTION_CODES = frozenset({1205, 1213})


def database_gone(exc: OperationalError) -> bool:
    """The database server cannot be reached or closed the connection."""
    orig = exc.orig
    return orig is not None and bool(orig.args) and orig.args[0] in MYSQL_GONE_CODES


def lost_to_a_concurrent_transaction(exc: OperationalError) -> bool:
    """A deadlock or lock timeout: the transaction lost to another, not a fault of its own."""
    orig = exc.orig
    if orig is not None and orig.args and orig.args[0] in MYSQL_CONTENTION_CODES:
        return True
    return "database is locked" in str(orig)  # SQLite, past its busy timeout


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # pysqlite's own implicit BEGIN is switched off so that ours (below) is the only one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # 256 MiB of page cache (allocated as used): a million-file catalog stays in memory.
        cursor.execute("PRAGMA cache_size=-262144")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("metaprod_sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _tune_mysql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        # READ COMMITTED keeps SKIP LOCKED claims from taking gap locks that serialize agents.
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cursor.execute("SET SESSION time_zone = '+00:00'")
        cursor.close()
