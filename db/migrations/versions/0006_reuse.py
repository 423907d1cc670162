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
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("signature", sa.String(64), nullable=True))
        batch.add_column(sa.Column("reused_from", sa.Integer(), nullable=True))
        batch.create_index(op.f("ix_tasks_signature"), ["signature", "status"])
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("reused_from", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("reused_from")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index(op.f("ix_tasks_signature"))
        batch.drop_column("reused_from")
        batch.drop_column("signature")
