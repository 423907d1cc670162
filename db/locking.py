"""Row claims that keep two agent processes off the same work.

MariaDB/MySQL: `SELECT ... FOR UPDATE SKIP LOCKED` (rows another agent holds are skipped).
SQLite: every writer already holds the database write lock (`BEGIN IMMEDIATE` in
session_scope), so a plain select is exclusive for the transaction.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

S = TypeVar("S", bound=Select[Any])


def claim(session: Session, stmt: S) -> S:
    if session.get_bind().dialect.name in {"mysql", "mariadb"}:
        return stmt.with_for_update(skip_locked=True)  # type: ignore[return-value]
    return stmt
