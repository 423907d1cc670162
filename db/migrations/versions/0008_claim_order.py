"""tasks: index (status, task_index), the submit agent's claim order: the lowest-indexed
Created tasks of every transformation first, so that a small production is not queued behind
a root of millions of Created tasks

Revision ID: 0008_claim_order
Revises: 0007_counters
Create Date: 2026-12-06 02:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_claim_order"
down_revision: str | None = "0007_counters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tasks_status_index", "tasks", ["status", "task_index"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tasks_status_index", table_name="tasks")
