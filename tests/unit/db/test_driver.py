"""A MariaDB URL without the `metaprod[mysql]` extra says what to install, in one line."""

from __future__ import annotations

import importlib.util

import pytest
from metaprod.db.session import Database, MissingDriver, require_driver
from sqlalchemy.engine import make_url


def test_mysql_url_without_mysqlclient_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "MySQLdb" else real(name, *a))
    with pytest.raises(MissingDriver) as err:
        Database("mysql://root@127.0.0.1:3306/metaprod")
    message = err.value.message
    assert "pip install 'metaprod[mysql]'" in message and "libmariadb-dev" in message and "pkg-config" in message
    assert "\n" not in message
    require_driver(make_url("sqlite:///x.db"))  # SQLite needs nothing
    require_driver(make_url("mysql+pymysql://root@h/x"))  # another driver: not ours to judge
