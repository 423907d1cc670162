"""The Admin service over a real server and database: tokens (create, use, list, revoke),
who am I, agents; and the health and reflection services, open without a token."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from metaprod.clients import Client
from metaprod.core.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from metaprod.db import agents_status
from metaprod.db.models import AgentHeartbeat, utcnow
from metaprod.v1 import production_pb2, production_pb2_grpc

from tests.integration.conftest import Connect, RunningServer
from tests.integration.system import race

METAPROD_SERVICES = {
    "metaprod.v1.FileCatalog",
    "metaprod.v1.ProductionManager",
    "metaprod.v1.TransformationService",
    "metaprod.v1.Admin",
}
# A revocation through the server that checks the token takes effect at once (services/auth.py
# forget_tokens); this bound is the cache's delay, for a revocation made elsewhere.
REVOCATION_DELAY = 5.5
TEST_DB = os.environ.get("METAPROD_TEST_DB", "sqlite")


def test_token_create_use_list_revoke(connect_as: Connect, admin: Client) -> None:
    new = admin.admin.create_token("alice", "user")
    assert (new.token.name, new.token.role, new.token.owner, new.token.revoked) == ("alice", "user", "alice", False)
    assert new.token.created_at is not None
    assert new.secret and new.secret != "alice"

    # The secret is a bearer token at once.
    alice = connect_as(new.secret)
    me = alice.admin.whoami()
    assert (me.name, me.role, me.owner) == ("alice", "user", "alice")
    assert alice.productions.list() == []

    bot = admin.admin.create_token("bot", "reader", owner="team-x")
    assert bot.token.owner == "team-x"
    me = connect_as(bot.secret).admin.whoami()
    assert (me.name, me.role, me.owner) == ("bot", "reader", "team-x")

    listed = {t.name: t for t in admin.admin.list_tokens()}
    assert set(listed) == {"admin", "alice", "bot"}
    assert (listed["alice"].role, listed["alice"].owner, listed["alice"].revoked) == ("user", "alice", False)
    assert listed["admin"].role == "admin"

    revoked = admin.admin.revoke_token("alice")
    revoked_at = time.monotonic()
    assert (revoked.name, revoked.revoked) == ("alice", True)
    assert {t.name: t.revoked for t in admin.admin.list_tokens()} == {"admin": False, "alice": True, "bot": False}
    # Revoking again is harmless; an unknown name is NotFound.
    assert admin.admin.revoke_token("alice").revoked is True
    with pytest.raises(NotFound):
        admin.admin.revoke_token("nobody")

    # Within the cache delay, calls with the revoked secret start failing.
    while True:
        try:
            alice.admin.whoami()
        except Unauthenticated as exc:
            assert "revoked" in str(exc)
            break
        assert time.monotonic() - revoked_at < REVOCATION_DELAY, "a revoked token still works"
        time.sleep(0.1)
    with pytest.raises(Unauthenticated):
        alice.productions.list()
    # The other tokens still work, and the revoked name stays taken.
    assert connect_as(bot.secret).admin.whoami().name == "bot"
    with pytest.raises(AlreadyExists):
        admin.admin.create_token("alice", "user")


def test_token_refusals(server: RunningServer, connect_as: Connect, admin: Client) -> None:
    admin.admin.create_token("dup", "reader")
    with pytest.raises(AlreadyExists, match="dup"):
        admin.admin.create_token("dup", "user")
    with pytest.raises(InvalidArgument, match="superuser"):
        admin.admin.create_token("x", "superuser")
    with pytest.raises(InvalidArgument):
        admin.admin.create_token("w", "worker")
    with pytest.raises(InvalidArgument):
        admin.admin.create_token("", "user")

    user = connect_as(server.token("alice", "user"))
    reader = connect_as(server.token("carol", "reader"))
    for client in (user, reader):
        with pytest.raises(PermissionDenied):
            client.admin.create_token("sneaky", "admin")
        with pytest.raises(PermissionDenied):
            client.admin.list_tokens()
        with pytest.raises(PermissionDenied):
            client.admin.revoke_token("admin")
    names = [t.name for t in admin.admin.list_tokens()]
    assert names == ["admin", "dup", "alice", "carol"]
    assert {t.name: t.role for t in admin.admin.list_tokens()}["dup"] == "reader"
    assert not any(t.revoked for t in admin.admin.list_tokens())


def test_concurrent_creates_of_one_token_name(server: RunningServer, admin: Client) -> None:
    for round_ in range(3):
        outcomes = race(server, 6, lambda client, name=f"race-{round_}": client.admin.create_token(name, "reader"))
        assert outcomes.count("ok") == 1, outcomes
        assert all(o == "ok" or o.startswith("AlreadyExists") for o in outcomes), outcomes
    assert [t.name for t in admin.admin.list_tokens()] == ["admin", "race-0", "race-1", "race-2"]


def test_whoami_and_list_agents(server: RunningServer, connect_as: Connect, admin: Client) -> None:
    me = admin.admin.whoami()
    assert (me.name, me.role, me.owner) == ("admin", "admin", "admin")
    reader = connect_as(server.token("carol", "reader", owner="physics"))
    me = reader.admin.whoami()
    assert (me.name, me.role, me.owner) == ("carol", "reader", "physics")
    assert admin.admin.list_agents() == []  # no agent has ever beaten
    with server.database.session_scope() as session:
        agents_status.beat(session=session, name="submit", status="claimed 3 tasks in 1 jobs")
        agents_status.beat(session=session, name="monitor", status="stopped", stopped=True)
        session.add(
            AgentHeartbeat(
                name="input",
                host="gone",
                pid=1,
                started_at=utcnow() - timedelta(hours=2),
                last_beat=utcnow() - timedelta(hours=1),
                last_status="idle",
            )
        )
    for client in (admin, reader):
        agents = {(a.name, a.host): a for a in client.admin.list_agents()}
        here = socket.gethostname()
        assert set(agents) == {("submit", here), ("monitor", here), ("input", "gone")}
        submit = agents["submit", here]
        assert (submit.pid, submit.last_status, submit.alive) == (os.getpid(), "claimed 3 tasks in 1 jobs", True)
        assert submit.last_beat is not None and submit.started_at is not None
        assert agents["monitor", here].alive is False  # stopped
        assert agents["input", "gone"].alive is False  # silent for an hour
    with pytest.raises(Unauthenticated):
        connect_as("").admin.whoami()


def test_health_and_reflection_need_no_token(server: RunningServer, connect_as: Connect) -> None:
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", *sorted(METAPROD_SERVICES)):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service

        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = list(
            reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
            )
        )
        assert len(replies) == 1
        assert not replies[0].HasField("error_response")
        names = {s.name for s in replies[0].list_services_response.service}
        assert names >= METAPROD_SERVICES, names
        assert "grpc.health.v1.Health" in names

        # The same channel without a token is refused by the metaprod services themselves.
        productions = production_pb2_grpc.ProductionManagerStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            productions.ListProductions(production_pb2.ListProductionsRequest(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # The client's health check needs no token either.
    assert connect_as("").health() == "SERVING"
