"""Token lifetimes, authentication under load, catalog owners and production namespaces over a
real server and database (issue 11): an expired token, a worker token whose attempts ended, a
change to someone else's file, an import into someone else's production's outputs."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import yaml
from metaprod.clients import Client
from metaprod.core.errors import InvalidArgument, PermissionDenied, Unauthenticated
from metaprod.db import counters, jobs, tasks
from metaprod.db.models import CatalogFile, JobAttempt, Production, Task, Transformation, utcnow
from metaprod.services.auth import CACHE_SECONDS
from metaprod.v1 import transformation_pb2, transformation_pb2_grpc
from sqlalchemy import select, update
from sqlalchemy.pool import QueuePool

from tests.integration.conftest import Connect, RunningServer
from tests.integration.system import System


def test_a_token_expires(connect_as: Connect, admin: Client) -> None:
    soon = utcnow() + timedelta(seconds=2)
    new = admin.admin.create_token("brief", "reader", expires_at=soon)
    assert new.token.expires_at is not None and abs(new.token.expires_at - soon) < timedelta(milliseconds=1)
    listed = {t.name: t for t in admin.admin.list_tokens()}
    assert listed["brief"].expires_at == new.token.expires_at and listed["admin"].expires_at is None
    brief = connect_as(new.secret)
    assert brief.admin.whoami().name == "brief"  # and now it is cached
    while utcnow() < soon:
        time.sleep(0.05)
    # At once, cached or not: the cache never trusts a token past its expiry.
    with pytest.raises(Unauthenticated, match=r"token 'brief' expired at 20\d\d-"):
        brief.admin.whoami()
    with pytest.raises(Unauthenticated, match="expired"):
        brief.productions.list()
    # An expiry in the past is bad input, and creates nothing.
    with pytest.raises(InvalidArgument, match="not in the future"):
        admin.admin.create_token("late", "reader", expires_at=utcnow() - timedelta(seconds=1))
    assert "late" not in {t.name for t in admin.admin.list_tokens()}


def test_a_revocation_takes_effect_at_once_in_the_serving_process(connect_as: Connect, admin: Client) -> None:
    secret = admin.admin.create_token("gone", "user").secret
    gone = connect_as(secret)
    assert gone.admin.whoami().name == "gone"  # cached now
    admin.admin.revoke_token("gone")
    with pytest.raises(Unauthenticated, match="revoked"):
        gone.admin.whoami()


def test_only_an_admin_creates_tokens(connect_as: Connect, admin: Client) -> None:
    user = connect_as(admin.admin.create_token("u", "user").secret)
    for role in ("admin", "user", "reader"):
        with pytest.raises(PermissionDenied):
            user.admin.create_token(f"by-u-{role}", role)
    with pytest.raises(PermissionDenied, match="may not create a token of role admin"):
        user.admin.create_token("escalate", "admin")
    assert {t.name for t in admin.admin.list_tokens()} == {"admin", "u"}


def claimed_attempt(server: RunningServer, admin: Client, name: str) -> jobs.ClaimedJob:
    spec = {
        "production": name,
        "transformations": [{"name": "gen", "tasks": 1, "command": "true"}],
    }
    admin.productions.create(json.dumps(spec))
    admin.productions.start(name)
    with server.database.session_scope() as session:
        tid = session.scalar(
            select(Transformation.id)
            .join(Production, Production.id == Transformation.production_id)
            .where(Production.name == name)
        )
        assert tid is not None
        tasks.create_tasks(session=session, transformation_id=tid)
    with server.database.session_scope() as session:
        (job,) = jobs.claim_tasks(session=session, limit=10, max_queued_per_backend={})
    return job


def test_a_worker_token_dies_with_its_attempts(server: RunningServer, admin: Client) -> None:
    job = claimed_attempt(server, admin, "w")
    beat = transformation_pb2.HeartbeatRequest(task=job.task_id, attempt=job.attempt)
    meta = (("authorization", f"Bearer {job.secret}"),)
    with grpc.insecure_channel(server.address) as channel:
        stub = transformation_pb2_grpc.TransformationServiceStub(channel)
        assert stub.Heartbeat(beat, metadata=meta, timeout=10).proceed
        with server.database.session_scope() as session:
            session.execute(update(JobAttempt).where(JobAttempt.id == job.attempt_id).values(status="Lost"))
            # Changed behind the agents' back: counted as they would (db.counters).
            tid = session.get_one(Task, job.task_id).transformation_id
            counters.record(session, counters.ATTEMPT, tid, "Lost", 1)
        ended = time.monotonic()
        # Refused within the cache's delay (a cached worker token is trusted that long).
        while True:
            try:
                stub.Heartbeat(beat, metadata=meta, timeout=10)
            except grpc.RpcError as exc:
                assert exc.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
                assert "every attempt it was made for has ended" in exc.details()  # type: ignore[attr-defined]
                break
            assert time.monotonic() - ended < CACHE_SECONDS + 1, "a dead attempt's worker token still works"
            time.sleep(0.1)
        report = transformation_pb2.ReportTaskResultRequest(task=job.task_id, attempt=job.attempt, success=True)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ReportTaskResult(report, metadata=meta, timeout=10)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    with server.database.session_scope() as session:
        assert session.get_one(JobAttempt, job.attempt_id).status == "Lost"


def test_authentication_needs_no_connection_of_the_shared_pool(server: RunningServer, admin: Client) -> None:
    """With every connection of the pool the RPCs share held (stalled streams), a call is still
    told who it is: a cached token needs no connection, a new one uses the authenticator's own."""
    fresh = admin.admin.create_token("fresh", "reader").secret
    pool = server.database.engine.pool
    assert isinstance(pool, QueuePool)
    held = []
    try:
        while pool.checkedout() < pool.size() + pool._max_overflow:
            held.append(server.database.engine.raw_connection())
        assert pool.checkedout() == len(held) > 0
        start = time.monotonic()
        with grpc.insecure_channel(server.address) as channel:
            from metaprod.v1 import admin_pb2, admin_pb2_grpc

            stub = admin_pb2_grpc.AdminStub(channel)
            for secret, name in ((server.admin_token, "admin"), (fresh, "fresh"), (fresh, "fresh")):
                me = stub.WhoAmI(
                    admin_pb2.WhoAmIRequest(), metadata=(("authorization", f"Bearer {secret}"),), timeout=5
                )
                assert me.name == name
        assert time.monotonic() - start < 5
    finally:
        for connection in held:
            connection.close()


def test_files_are_changed_by_their_owner_or_an_admin(
    server: RunningServer, connect_as: Connect, admin: Client
) -> None:
    alice = connect_as(server.token("alice", "user"))
    bob = connect_as(server.token("bob", "user"))
    admin.catalog.add_field("run", "int")
    alice.catalog.register_files([{"lfn": "/alice/a", "metadata": {"run": 1}}])
    admin.catalog.register_files([{"lfn": "/admin/b", "metadata": {"run": 1}}])
    assert alice.catalog.get("/alice/a").owner == "alice"
    assert admin.catalog.get("/admin/b").owner == "admin"
    with pytest.raises(PermissionDenied, match=r"file '/alice/a' belongs to 'alice': 'bob' may not change it"):
        bob.catalog.set_metadata("/alice/a", {"run": 2})
    with pytest.raises(PermissionDenied, match="belongs to 'admin'"):
        alice.catalog.set_metadata("/admin/b", {"run": 2})
    assert alice.catalog.get("/alice/a").metadata == {"run": 1}
    assert admin.catalog.get("/admin/b").metadata == {"run": 1}
    assert alice.catalog.set_metadata("/alice/a", {"run": 3}).metadata == {"run": 3}
    assert admin.catalog.set_metadata("/alice/a", {"run": 4}).metadata == {"run": 4}
    assert admin.catalog.get("/alice/a").owner == "alice"  # an admin's change keeps the owner
    # A file from before the catalog had owners: admin only.
    with server.database.session_scope() as session:
        session.execute(update(CatalogFile).where(CatalogFile.lfn == "/alice/a").values(owner=None))
    with pytest.raises(PermissionDenied, match="has no owner"):
        alice.catalog.set_metadata("/alice/a", {"run": 5})
    assert admin.catalog.set_metadata("/alice/a", {"run": 6}).metadata == {"run": 6}


def test_nobody_imports_into_a_production_namespace(server: RunningServer, connect_as: Connect, admin: Client) -> None:
    bob = connect_as(server.token("bob", "user"))
    alice = connect_as(server.token("alice", "user"))
    bob.productions.create(
        json.dumps({"production": "bp", "transformations": [{"name": "g", "tasks": 1, "command": "true"}]})
    )
    batch = [{"lfn": "/alice/ok"}, {"lfn": "/bp/g/000000/out.dat"}]
    for user in (alice, bob):  # its owner too: a file there could block one of its outputs
        with pytest.raises(PermissionDenied, match=r"/bp/ is the output namespace of production 'bp' \(owner 'bob'\)"):
            user.catalog.register_files(batch)
    assert list(admin.catalog.find("{}")) == []  # the batch registered nothing
    alice.catalog.register_files([{"lfn": "/bpx/ok"}, {"lfn": "/alice/ok"}])
    admin.catalog.register_files([{"lfn": "/bp/by-admin"}])  # an admin may
    assert {f.lfn: f.owner for f in list(admin.catalog.find("{}"))} == {
        "/bpx/ok": "alice",
        "/alice/ok": "alice",
        "/bp/by-admin": "admin",
    }


def write_spec(tmp_path: Path, spec: dict[str, object]) -> str:
    path = tmp_path / f"{spec['production']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_an_import_cannot_block_a_production_outputs(system: System, tmp_path: Path) -> None:
    """User A imports /bobprod2/gen/000001/out.dat, the very LFN bob's production would write,
    before bob creates it: bob's production writes under /bobprod2@2/ and completes with every
    task Done on its first attempt; A's file is untouched; A cannot import there any more."""
    system.up()
    alice = system.cli("token", "create", "alice", "--role", "user", "--expires", "1d").stdout.strip()
    bob = system.cli("token", "create", "bob", "--role", "user").stdout.strip()
    listed = {t["name"]: t for t in system.json("token", "list")}
    assert listed["alice"]["expires_at"] is not None and listed["bob"]["expires_at"] is None
    system.cli("--token", alice, "catalog", "field", "add", "datatype", "str")
    planted = tmp_path / "planted.jsonl"
    planted.write_text(json.dumps({"lfn": "/bobprod2/gen/000001/out.dat", "metadata": {"datatype": "x"}}) + "\n")
    system.cli("--token", alice, "catalog", "import", str(planted))
    before = system.json("catalog", "show", "/bobprod2/gen/000001/out.dat")
    assert before["owner"] == "alice" and before["provenance"] is None

    spec = {
        "production": "bobprod2",
        "fields": {"datatype": "str"},
        "transformations": [
            {
                "name": "gen",
                "tasks": 3,
                "command": "echo $METAPROD_TASK_INDEX > out.dat",
                "outputs": [{"glob": "out.dat", "metadata": {"datatype": "gen"}}],
            }
        ],
    }
    system.cli("--token", bob, "production", "create", "-f", write_spec(tmp_path, spec))
    assert system.json("production", "show", "bobprod2")["namespace"] == "bobprod2@2"
    system.cli("--token", bob, "production", "start", "bobprod2")
    progress = system.wait_for("bobprod2")
    assert progress["transformations"][0]["tasks"]["Done"] == 3
    assert all(
        t["attempt"] == 1 and t["status"] == "Done" for t in system.json("transformation", "tasks", "bobprod2", "gen")
    )
    outputs = {f["lfn"]: f for f in system.json("catalog", "find", "datatype=gen")}
    assert sorted(outputs) == [f"/bobprod2@2/gen/{i:06d}/out.dat" for i in range(3)]
    shown = system.json("catalog", "show", "/bobprod2@2/gen/000001/out.dat")
    assert shown["owner"] == "bob" and shown["provenance"]["production"] == "bobprod2"
    assert system.json("catalog", "show", "/bobprod2/gen/000001/out.dat") == before

    # Now /bobprod2@2/ is bob's production's: alice can neither import there nor change its files.
    sneaky = tmp_path / "sneaky.jsonl"
    sneaky.write_text(json.dumps({"lfn": "/bobprod2@2/gen/000009/out.dat"}) + "\n")
    refused = system.cli("--token", alice, "catalog", "import", str(sneaky), check=False)
    assert refused.returncode != 0 and "output namespace of production 'bobprod2'" in refused.stderr
    refused = system.cli(
        "--token", alice, "catalog", "set-meta", "/bobprod2@2/gen/000001/out.dat", "datatype=x", check=False
    )
    assert refused.returncode != 0 and "belongs to 'bob'" in refused.stderr
    assert system.json("catalog", "show", "/bobprod2@2/gen/000001/out.dat") == shown
    assert system.cli("catalog", "set-meta", "/bobprod2@2/gen/000001/out.dat", "datatype=gen").returncode == 0
