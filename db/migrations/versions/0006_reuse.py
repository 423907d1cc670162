"""reuse by content: a task's signature (indexed, to find a Done task with the same one) and
the task it reused; a file's `reused_from` provenance

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-05 13:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLEs, never a batch copy: on SQLite, copying `tasks` or `files` would
    # cascade into the tables that reference them.
    op.add_column("tasks", sa.Column("signature", sa.String(64), nullable=True))
    op.add_column("tasks", sa.Column("reused_from", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_tasks_signature"), "tasks", ["signature", "status"])
    op.add_column("files", sa.Column("reused_from", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_files_reused_from"), "files", ["reused_from"])


def downgrade() -> None:
    op.drop_index(op.f("ix_tasks_signature"), table_name="tasks")
    op.drop_index(op.f("ix_files_reused_from"), table_name="files")
    for table, column in (("files", "reused_from"), ("tasks", "reused_from"), ("tasks", "signature")):
        # SQLite (3.35+) drops a column in place; Alembic's SQLite dialect would copy the table.
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        else:
            op.drop_column(table, column)
