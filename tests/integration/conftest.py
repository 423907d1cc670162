"""A real metaprod server on a free port over a fresh database, with an admin token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from metaprod.clients import Client, connect
from metaprod.db.session import Database
from metaprod.db.tokens import create_token
from metaprod.services.app import build_server
from metaprod.services.server import MetaprodServer

from tests.integration.system import System

Connect = Callable[[str | None], Client]


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


@pytest.fixture
def connect_as(server: RunningServer) -> Iterator[Connect]:
    """Clients of the running server with a given bearer token (None: the admin's)."""
    clients: list[Client] = []

    def make(token: str | None = None) -> Client:
        client = connect(server.address, server.admin_token if token is None else token, timeout=15, retries=0)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def admin(connect_as: Connect) -> Client:
    return connect_as(None)


@pytest.fixture
def system(tmp_path: Path, database_url: str) -> Iterator[System]:
    """`metaprod` processes (up, serve, agents) driven through the CLI; stopped afterwards."""
    sys_ = System(data_dir=tmp_path / "data", db_url=database_url)
    try:
        yield sys_
    finally:
        sys_.stop()
