"""catalog owners, production output namespaces, token expiry

files.owner: who may change or remove a file (the importer's owner, or the owner of the
production that made it). Existing rows: a produced file gets its production's owner; an
imported one stays NULL, which means admin-only (nobody can tell who imported it).
productions.namespace: the first segment of the production's output LFNs, chosen once when
it is created (backfilled with the rule used until now: its name, or name@N for the N-th
production of that name). api_tokens.expires_at: optional expiry of a token.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 13:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _name(length: int) -> sa.types.TypeEngine[str]:
    return (
        sa.String(length=length)
        .with_variant(sa.String(length=length, collation="utf8mb4_bin"), "mariadb")
        .with_variant(sa.String(length=length, collation="utf8mb4_bin"), "mysql")
    )


# Columns are added and dropped in place, never by batch (copy and move) on SQLite: its
# connections enforce foreign keys, so dropping a copied table would cascade to its children.


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("expires_at", _DATETIME, nullable=True))
    op.add_column("files", sa.Column("owner", sa.String(length=128), nullable=True))
    op.execute(
        "UPDATE files SET owner = (SELECT productions.owner FROM productions"
        " WHERE productions.id = files.producer_production_id) WHERE producer_production_id IS NOT NULL"
    )
    op.add_column("productions", sa.Column("namespace", _name(140), nullable=True))
    bind = op.get_bind()
    seen: dict[str, int] = {}
    for pid, name in bind.execute(sa.text("SELECT id, name FROM productions ORDER BY id")).all():
        seen[name] = seen.get(name, 0) + 1
        namespace = name if seen[name] == 1 else f"{name}@{seen[name]}"
        bind.execute(sa.text("UPDATE productions SET namespace = :ns WHERE id = :id"), {"ns": namespace, "id": pid})
    op.create_index(op.f("ix_productions_namespace"), "productions", ["namespace"], unique=True)


def _drop_column(table: str, column: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # SQLite 3.35+, in place
    else:
        op.drop_column(table, column)


def downgrade() -> None:
    op.drop_index(op.f("ix_productions_namespace"), table_name="productions")
    _drop_column("productions", "namespace")
    _drop_column("files", "owner")
    _drop_column("api_tokens", "expires_at")
