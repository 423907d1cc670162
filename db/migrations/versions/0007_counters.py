"""status counters: a transformation's tasks, files and ended attempts by status (and its
reused tasks), and the catalog's files, kept by the transactions that change them, so that
summaries never scan tasks, files or attempts; backfilled here from the existing rows

Revision ID: 0007_counters
Revises: 0006
Create Date: 2026-12-05 21:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_counters"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "status_counters",
        sa.Column("transformation_id", sa.Integer(), nullable=False),
        sa.Column("what", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("transformation_id", "what", "status", name=op.f("pk_status_counters")),
    )
    # The backfill: one grouped scan of each table, once.
    op.execute(
        "INSERT INTO status_counters (transformation_id, what, status, n)"
        " SELECT transformation_id, 'task', status, COUNT(*) FROM tasks GROUP BY transformation_id, status"
    )
    op.execute(
        "INSERT INTO status_counters (transformation_id, what, status, n)"
        " SELECT transformation_id, 'file', status, COUNT(*) FROM transformation_files"
        " GROUP BY transformation_id, status"
    )
    op.execute(
        "INSERT INTO status_counters (transformation_id, what, status, n)"
        " SELECT transformation_id, 'reused', 'Done', COUNT(*) FROM tasks WHERE reused_from IS NOT NULL"
        " GROUP BY transformation_id"
    )
    op.execute(
        "INSERT INTO status_counters (transformation_id, what, status, n)"
        " SELECT tasks.transformation_id, 'attempt', job_attempts.status, COUNT(*)"
        " FROM job_attempts JOIN tasks ON tasks.id = job_attempts.task_id"
        " WHERE job_attempts.status IN ('Done', 'Failed', 'Lost', 'Killed')"
        " GROUP BY tasks.transformation_id, job_attempts.status"
    )
    op.execute(
        "INSERT INTO status_counters (transformation_id, what, status, n)"
        " SELECT 0, 'catalog', 'files', COUNT(*) FROM files"
    )


def downgrade() -> None:
    op.drop_table("status_counters")
