"""What the benchmarks write straight through the driver (untimed set-up, or the raw
baseline a figure is compared with): the columns of a transformation row, and a raw cursor
with the driver's placeholder and a timestamp it takes."""

from __future__ import annotations

from typing import Any

from metaprod.db.models import utcnow
from metaprod.db.session import Database

TRANSFORMATION_COLUMNS = (
    "id",
    "production_id",
    "name",
    "status",
    "spec",
    "input_query",
    "task_count",
    "max_attempts",
    "input_closed",
    "backend",
    "command",
    "input_watermark",
    "plugin",
    "group_size",
    "created_at",
    "updated_at",
)


def raw_cursor(db: Database) -> tuple[Any, Any, str, Any]:
    """(connection, cursor, placeholder, now as the driver takes it) of a raw connection."""
    conn = db.engine.raw_connection()
    stamp: Any = utcnow().replace(tzinfo=None)
    if db.is_sqlite:
        stamp = stamp.isoformat(" ")
    return conn, conn.cursor(), "?" if db.is_sqlite else "%s", stamp
