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


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", _DATETIME, nullable=True))
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=128), nullable=True))
    op.execute(
        "UPDATE files SET owner = (SELECT productions.owner FROM productions"
        " WHERE productions.id = files.producer_production_id) WHERE producer_production_id IS NOT NULL"
    )
    with op.batch_alter_table("productions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("namespace", _name(140), nullable=True))
    bind = op.get_bind()
    seen: dict[str, int] = {}
    for pid, name in bind.execute(sa.text("SELECT id, name FROM productions ORDER BY id")).all():
        seen[name] = seen.get(name, 0) + 1
        namespace = name if seen[name] == 1 else f"{name}@{seen[name]}"
        bind.execute(sa.text("UPDATE productions SET namespace = :ns WHERE id = :id"), {"ns": namespace, "id": pid})
    with op.batch_alter_table("productions", schema=None) as batch_op:
        batch_op.alter_column("namespace", existing_type=_name(140), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_productions_namespace"), ["namespace"])


def downgrade() -> None:
    with op.batch_alter_table("productions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_productions_namespace"), type_="unique")
        batch_op.drop_column("namespace")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_column("owner")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
