"""production lifecycle: outcomes, closed inputs, retries, events, provenance that outlives delete

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 09:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _name(length: int = 128) -> sa.types.TypeEngine[str]:
    return (
        sa.String(length=length)
        .with_variant(sa.String(length=length, collation="utf8mb4_bin"), "mariadb")
        .with_variant(sa.String(length=length, collation="utf8mb4_bin"), "mysql")
    )


_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_FILE_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("productions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("live_name", _name(), nullable=True))
        batch_op.add_column(sa.Column("purge_outputs", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.drop_constraint("uq_productions_name", type_="unique")
        batch_op.create_index(batch_op.f("ix_productions_name"), ["name"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_productions_live_name"), ["live_name"])
    op.execute("UPDATE productions SET live_name = name WHERE status <> 'Cleaned'")

    op.create_table(
        "production_events",
        sa.Column("id", _FILE_ID, nullable=False),
        sa.Column("production_id", sa.Integer(), nullable=False),
        sa.Column("time", _DATETIME, nullable=False),
        sa.Column("actor", sa.String(length=160), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("transformation", _name(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["production_id"],
            ["productions.id"],
            name=op.f("fk_production_events_production_id_productions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_production_events")),
    )
    with op.batch_alter_table("production_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_production_events_production_id"), ["production_id"], unique=False)

    with op.batch_alter_table("transformations", schema=None) as batch_op:
        batch_op.alter_column("group_size", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("group_by", sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column("max_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("max_runtime", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("input_closed", sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts_base", sa.Integer(), nullable=False, server_default="0"))

    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_constraint("fk_files_producer_task_id_tasks", type_="foreignkey")
        batch_op.add_column(sa.Column("producer_production_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("producer_production", _name(), nullable=True))
        batch_op.add_column(sa.Column("producer_transformation", _name(), nullable=True))
        batch_op.create_index(batch_op.f("ix_files_producer_production_id"), ["producer_production_id"], unique=False)

    op.create_table(
        "file_inputs",
        sa.Column("file_id", _FILE_ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("input_file_id", _FILE_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_file_inputs_file_id_files"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("file_id", "position", name=op.f("pk_file_inputs")),
    )
    with op.batch_alter_table("file_inputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_file_inputs_input_file_id"), ["input_file_id"], unique=False)

    # Provenance of files produced before this revision, copied from the execution records.
    op.execute(
        "UPDATE files SET "
        "producer_transformation = (SELECT t.name FROM tasks k JOIN transformations t "
        "ON t.id = k.transformation_id WHERE k.id = files.producer_task_id), "
        "producer_production_id = (SELECT t.production_id FROM tasks k JOIN transformations t "
        "ON t.id = k.transformation_id WHERE k.id = files.producer_task_id) "
        "WHERE producer_task_id IS NOT NULL"
    )
    op.execute(
        "UPDATE files SET producer_production = (SELECT p.name FROM productions p "
        "WHERE p.id = files.producer_production_id) WHERE producer_production_id IS NOT NULL"
    )
    op.execute(
        "INSERT INTO file_inputs (file_id, position, input_file_id) "
        "SELECT f.id, i.position, i.file_id FROM files f JOIN task_inputs i ON i.task_id = f.producer_task_id"
    )


def downgrade() -> None:
    with op.batch_alter_table("file_inputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_file_inputs_input_file_id"))
    op.drop_table("file_inputs")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_producer_production_id"))
        batch_op.drop_column("producer_transformation")
        batch_op.drop_column("producer_production")
        batch_op.drop_column("producer_production_id")
        batch_op.create_foreign_key(
            "fk_files_producer_task_id_tasks", "tasks", ["producer_task_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("attempts_base")
    with op.batch_alter_table("transformations", schema=None) as batch_op:
        batch_op.drop_column("input_closed")
        batch_op.drop_column("max_runtime")
        batch_op.drop_column("max_bytes")
        batch_op.drop_column("group_by")
        batch_op.alter_column("group_size", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("production_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_production_events_production_id"))
    op.drop_table("production_events")
    with op.batch_alter_table("productions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_productions_live_name"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_productions_name"))
        batch_op.create_unique_constraint("uq_productions_name", ["name"])
        batch_op.drop_column("purge_outputs")
        batch_op.drop_column("live_name")
