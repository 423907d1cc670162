"""Alembic environment: runs on the connection the caller hands over in `config.attributes`."""

from __future__ import annotations

from alembic import context
from metaprod.db.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("metaprod migrations run through metaprod.db.migrate, which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
