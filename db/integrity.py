"""A quick integrity check of the database, run by every server-side process before it serves.

SQLite: `PRAGMA quick_check` (every page and record is read and its structure checked; no
index-against-table cross checks), about a second per few hundred MB. A database whose pages
were overwritten would otherwise start and serve until a query met the damage.

MariaDB/MySQL: not checked here. InnoDB verifies the checksum of every page it reads and
stops on a damaged one by itself; `CHECK TABLE` reads whole tables (InnoDB ignores QUICK), which
is not cheap at start with a large catalog. `mariadb-check` (or `CHECK TABLE`) checks offline.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from metaprod.core.errors import FailedPrecondition
from sqlalchemy.engine import URL

SHOWN_PROBLEMS = 3


class DamagedDatabase(FailedPrecondition):
    """The database failed its integrity check: nothing may use it."""


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL (None: not SQLite, or in memory)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def sqlite_problems(path: Path) -> list[str]:
    """What `PRAGMA quick_check` finds wrong with a SQLite file ([]: nothing)."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        return [str(exc)]
    try:
        rows = connection.execute("PRAGMA quick_check").fetchall()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return []  # another process writes: it found the database usable
        return [str(exc)]
    except sqlite3.DatabaseError as exc:  # "file is not a database", "disk image is malformed"
        return [str(exc)]
    finally:
        connection.close()
    problems = [str(row[0]) for row in rows]
    return [] if problems == ["ok"] else problems


def check_integrity(url: URL) -> None:
    """Refuse a damaged database with one line naming it and what to do."""
    path = sqlite_file(url)
    if path is None or not path.is_file():
        return
    problems = sqlite_problems(path)
    if not problems:
        return
    more = len(problems) - SHOWN_PROBLEMS
    shown = " ".join("; ".join(problems[:SHOWN_PROBLEMS]).split()) + (f" (and {more} more)" if more > 0 else "")
    raise DamagedDatabase(
        f"database {path} is damaged ({shown}); nothing was served: stop every metaprod process "
        f"using it and restore it from a backup (docs/operations.md#backups), then `metaprod db check` "
        f"checks it again"
    )
