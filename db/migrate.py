"""Schema migrations (Alembic) and the at-head check every process makes before it starts."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from metaprod.core.errors import FailedPrecondition
from metaprod.db.session import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class SchemaNotAtHead(FailedPrecondition):
    """The database is older (or newer) than this code; `metaprod db upgrade` fixes the former."""


def alembic_config(database: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # The option is ConfigParser-interpolated: a "%" of the URL (e.g. unix_socket=%2Frun...) is "%%".
    cfg.set_main_option("sqlalchemy.url", database.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def head_revision(database: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database)).get_current_head()


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(database: Database, revision: str = "head") -> None:
    cfg = alembic_config(database)
    with database.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def ensure_at_head(database: Database) -> None:
    current, head = current_revision(database), head_revision(database)
    if current != head:
        raise SchemaNotAtHead(
            f"database {database.url.render_as_string(hide_password=True)} is at revision {current or 'none'}, "
            f"this metaprod needs {head}: run `metaprod db upgrade`"
        )
