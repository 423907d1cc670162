"""The integrity check at start: a sound SQLite database passes, overwritten pages fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from metaprod.db.integrity import DamagedDatabase, check_integrity, sqlite_problems
from metaprod.db.migrate import upgrade
from metaprod.db.session import Database
from sqlalchemy.engine import make_url


def make_database(path: Path) -> None:
    database = Database(f"sqlite:///{path}")
    try:
        upgrade(database)
    finally:
        database.dispose()


def test_a_sound_database_passes_and_other_urls_are_not_checked(tmp_path: Path) -> None:
    path = tmp_path / "metaprod.db"
    make_database(path)
    assert sqlite_problems(path) == []
    check_integrity(make_url(f"sqlite:///{path}"))
    check_integrity(make_url(f"sqlite:///{tmp_path / 'absent.db'}"))  # `up` creates it
    check_integrity(make_url("mysql://root@127.0.0.1:1/none"))  # not checked: see the module


@pytest.mark.parametrize(("offset", "found"), [(0, "file is not a database"), (2 * 4096, "malformed")])
def test_overwritten_pages_are_refused_naming_the_file(tmp_path: Path, offset: int, found: str) -> None:
    path = tmp_path / "metaprod.db"
    make_database(path)
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(os.urandom(8 * 4096))
    with pytest.raises(DamagedDatabase) as caught:
        check_integrity(make_url(f"sqlite:///{path}"))
    message = caught.value.message
    assert f"database {path} is damaged" in message and found in message and "\n" not in message
