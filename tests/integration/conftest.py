"""A real metaprod server on a free port over a fresh database, with an admin token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from metaprod.db.session import Database
from metaprod.db.tokens import create_token
from metaprod.services.app import build_server
from metaprod.services.server import MetaprodServer


@dataclass(frozen=True)
class RunningServer:
    address: str
    admin_token: str
    database: Database
    server: MetaprodServer

    def token(self, name: str, role: str, owner: str | None = None) -> str:
        with self.database.session_scope() as session:
            _, secret = create_token(session=session, name=name, role=role, owner=owner)
        return secret


@pytest.fixture
def server(database: Database) -> Iterator[RunningServer]:
    with database.session_scope() as session:
        _, secret = create_token(session=session, name="admin", role="admin")
    srv = build_server(database, address="127.0.0.1:0", max_workers=16)
    srv.start()
    try:
        yield RunningServer(address=srv.address, admin_token=secret, database=database, server=srv)
    finally:
        srv.stop(grace=1.0)
