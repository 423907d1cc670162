"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 03:17:13.790997
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "agent_heartbeats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sa.Column("last_beat", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sa.Column("last_status", sa.Text(), nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_heartbeats")),
        sa.UniqueConstraint("name", "host", "pid", name=op.f("uq_agent_heartbeats_name_host_pid")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=128)
            .with_variant(sa.String(length=128, collation="utf8mb4_bin"), "mariadb")
            .with_variant(sa.String(length=128, collation="utf8mb4_bin"), "mysql"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sa.Column("revoked_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "metadata_fields",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=128)
            .with_variant(sa.String(length=128, collation="utf8mb4_bin"), "mariadb")
            .with_variant(sa.String(length=128, collation="utf8mb4_bin"), "mysql"),
            nullable=False,
        ),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metadata_fields")),
        sa.UniqueConstraint("name", name=op.f("uq_metadata_fields_name")),
    )
    op.create_table(
        "productions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=128)
            .with_variant(sa.String(length=128, collation="utf8mb4_bin"), "mariadb")
            .with_variant(sa.String(length=128, collation="utf8mb4_bin"), "mysql"),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("created_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sa.Column("updated_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_productions")),
        sa.UniqueConstraint("name", name=op.f("uq_productions_name")),
    )
    with op.batch_alter_table("productions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_productions_status"), ["status"], unique=False)

    op.create_table(
        "transformations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("production_id", sa.Integer(), nullable=False),
        sa.Column(
            "name",
            sa.String(length=128)
            .with_variant(sa.String(length=128, collation="utf8mb4_bin"), "mariadb")
            .with_variant(sa.String(length=128, collation="utf8mb4_bin"), "mysql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("input_query", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("output_query", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("output_metadata", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("plugin", sa.String(length=32), nullable=False),
        sa.Column("group_size", sa.Integer(), nullable=False),
        sa.Column("task_count", sa.Integer(), nullable=True),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("input_watermark", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sa.Column("updated_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sa.ForeignKeyConstraint(
            ["production_id"],
            ["productions.id"],
            name=op.f("fk_transformations_production_id_productions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transformations")),
        sa.UniqueConstraint("production_id", "name", name=op.f("uq_transformations_production_id_name")),
    )
    with op.batch_alter_table("transformations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transformations_status"), ["status"], unique=False)

    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transformation_id", sa.Integer(), nullable=False),
        sa.Column("task_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=True),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("backend_job_id", sa.String(length=128), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sa.Column("updated_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sa.ForeignKeyConstraint(
            ["transformation_id"],
            ["transformations.id"],
            name=op.f("fk_tasks_transformation_id_transformations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("transformation_id", "task_index", name=op.f("uq_tasks_transformation_id_task_index")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_status", ["status", "not_before"], unique=False)

    op.create_table(
        "transformation_links",
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("intersection", sa.JSON(none_as_null=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["transformations.id"],
            name=op.f("fk_transformation_links_child_id_transformations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["transformations.id"],
            name=op.f("fk_transformation_links_parent_id_transformations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("child_id", "parent_id", name=op.f("pk_transformation_links")),
    )
    with op.batch_alter_table("transformation_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transformation_links_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "files",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "lfn",
            sa.String(length=700)
            .with_variant(sa.String(length=700, collation="utf8mb4_bin"), "mariadb")
            .with_variant(sa.String(length=700, collation="utf8mb4_bin"), "mysql"),
            nullable=False,
        ),
        sa.Column("pfn", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("checksum", sa.String(length=128), nullable=False),
        sa.Column("producer_task_id", sa.Integer(), nullable=True),
        sa.Column("producer_attempt", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sa.ForeignKeyConstraint(
            ["producer_task_id"], ["tasks.id"], name=op.f("fk_files_producer_task_id_tasks"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint("lfn", name=op.f("uq_files_lfn")),
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_files_producer_task_id"), ["producer_task_id"], unique=False)

    op.create_table(
        "job_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("backend_job_id", sa.String(length=128), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("workdir", sa.Text(), nullable=True),
        sa.Column("log_path", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("report", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=True),
        sa.Column("started_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=True),
        sa.Column("finished_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_job_attempts_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_attempts")),
        sa.UniqueConstraint("task_id", "attempt", name=op.f("uq_job_attempts_task_id_attempt")),
    )
    with op.batch_alter_table("job_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_job_attempts_status", ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_attempts_token_hash"), ["token_hash"], unique=False)

    op.create_table(
        "file_metadata",
        sa.Column("file_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("field_id", sa.Integer(), nullable=False),
        sa.Column("value_int", sa.BigInteger(), nullable=True),
        sa.Column("value_float", sa.Double(), nullable=True),
        sa.Column(
            "value_str",
            sa.String(length=255)
            .with_variant(sa.String(length=255, collation="utf8mb4_bin"), "mariadb")
            .with_variant(sa.String(length=255, collation="utf8mb4_bin"), "mysql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["field_id"],
            ["metadata_fields.id"],
            name=op.f("fk_file_metadata_field_id_metadata_fields"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_file_metadata_file_id_files"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("file_id", "field_id", name=op.f("pk_file_metadata")),
    )
    with op.batch_alter_table("file_metadata", schema=None) as batch_op:
        batch_op.create_index("ix_file_metadata_float", ["field_id", "value_float", "file_id"], unique=False)
        batch_op.create_index("ix_file_metadata_int", ["field_id", "value_int", "file_id"], unique=False)
        batch_op.create_index("ix_file_metadata_str", ["field_id", "value_str", "file_id"], unique=False)

    op.create_table(
        "task_inputs",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_task_inputs_file_id_files"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_inputs_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "position", name=op.f("pk_task_inputs")),
    )
    with op.batch_alter_table("task_inputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_inputs_file_id"), ["file_id"], unique=False)

    op.create_table(
        "transformation_files",
        sa.Column("transformation_id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_transformation_files_file_id_files"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["transformation_id"],
            ["transformations.id"],
            name=op.f("fk_transformation_files_transformation_id_transformations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("transformation_id", "file_id", name=op.f("pk_transformation_files")),
    )
    with op.batch_alter_table("transformation_files", schema=None) as batch_op:
        batch_op.create_index(
            "ix_transformation_files_status", ["transformation_id", "status", "file_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("transformation_files", schema=None) as batch_op:
        batch_op.drop_index("ix_transformation_files_status")

    op.drop_table("transformation_files")
    with op.batch_alter_table("task_inputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_inputs_file_id"))

    op.drop_table("task_inputs")
    with op.batch_alter_table("file_metadata", schema=None) as batch_op:
        batch_op.drop_index("ix_file_metadata_str")
        batch_op.drop_index("ix_file_metadata_int")
        batch_op.drop_index("ix_file_metadata_float")

    op.drop_table("file_metadata")
    with op.batch_alter_table("job_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_attempts_token_hash"))
        batch_op.drop_index("ix_job_attempts_status")

    op.drop_table("job_attempts")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_producer_task_id"))

    op.drop_table("files")
    with op.batch_alter_table("transformation_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transformation_links_parent_id"))

    op.drop_table("transformation_links")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_status")

    op.drop_table("tasks")
    with op.batch_alter_table("transformations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transformations_status"))

    op.drop_table("transformations")
    with op.batch_alter_table("productions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_productions_status"))

    op.drop_table("productions")
    op.drop_table("metadata_fields")
    op.drop_table("api_tokens")
    op.drop_table("agent_heartbeats")
