"""data cycles: the transformations in each produced file's ancestry, and the files skipped for it

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 09:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FILE_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "file_ancestry",
        sa.Column("file_id", _FILE_ID, nullable=False),
        sa.Column("transformation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_file_ancestry_file_id_files"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("file_id", "transformation_id", name=op.f("pk_file_ancestry")),
    )
    op.create_table(
        "skipped_files",
        sa.Column("transformation_id", sa.Integer(), nullable=False),
        sa.Column("file_id", _FILE_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_skipped_files_file_id_files"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["transformation_id"],
            ["transformations.id"],
            name=op.f("fk_skipped_files_transformation_id_transformations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("transformation_id", "file_id", name=op.f("pk_skipped_files")),
    )
    # The ancestry of the files produced before this revision: their producers' transformations,
    # then, level by level down the provenance, their inputs' ancestries, until nothing is added.
    ignore = "INSERT OR IGNORE" if op.get_bind().dialect.name == "sqlite" else "INSERT IGNORE"
    op.execute(
        f"{ignore} INTO file_ancestry (file_id, transformation_id) "
        "SELECT f.id, k.transformation_id FROM files f JOIN tasks k ON k.id = f.producer_task_id"
    )
    while True:
        added = op.get_bind().execute(
            sa.text(
                f"{ignore} INTO file_ancestry (file_id, transformation_id) "
                "SELECT DISTINCT i.file_id, a.transformation_id FROM file_inputs i "
                "JOIN file_ancestry a ON a.file_id = i.input_file_id"
            )
        )
        if not added.rowcount:
            break


def downgrade() -> None:
    op.drop_table("skipped_files")
    op.drop_table("file_ancestry")
