"""monitoring: stored samples for the dashboard's history plots, agents' cycle counters,
indexes on the attempts' start and end times

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "monitor_samples",
        sa.Column("id", _ID, nullable=False),
        sa.Column("time", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sa.Column("production_id", sa.Integer(), nullable=False),
        sa.Column("transformation_id", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("queued_tasks", sa.Integer(), nullable=False),
        sa.Column("running_tasks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_samples")),
    )
    op.create_index(op.f("ix_monitor_samples_time"), "monitor_samples", ["time"])
    op.create_index(op.f("ix_monitor_samples_production_id"), "monitor_samples", ["production_id"])
    op.create_index("ix_monitor_samples_transformation_id_time", "monitor_samples", ["transformation_id", "time"])
    with op.batch_alter_table("agent_heartbeats") as batch:
        batch.add_column(sa.Column("cycles", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("cycle_seconds_total", sa.Double(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_cycle_seconds", sa.Double(), nullable=False, server_default="0"))
    with op.batch_alter_table("agent_heartbeats") as batch:
        for name in ("cycles", "cycle_seconds_total", "last_cycle_seconds"):
            batch.alter_column(name, server_default=None)
    op.create_index("ix_job_attempts_started_at", "job_attempts", ["started_at"])
    op.create_index("ix_job_attempts_finished_at", "job_attempts", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_job_attempts_finished_at", table_name="job_attempts")
    op.drop_index("ix_job_attempts_started_at", table_name="job_attempts")
    with op.batch_alter_table("agent_heartbeats") as batch:
        batch.drop_column("last_cycle_seconds")
        batch.drop_column("cycle_seconds_total")
        batch.drop_column("cycles")
    op.drop_table("monitor_samples")
