"""The typed client against the fake in-process server: auth metadata, deadlines, retries,
status-code mapping, streaming in both directions."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import grpc
import pytest
from metaprod.clients import (
    CatalogFile,
    DeadlineExceeded,
    RemoteError,
    ServiceUnavailable,
    connect,
)
from metaprod.clients.errors import ERROR_FOR_STATUS, from_rpc_error
from metaprod.clients.transport import CallPolicy, is_idempotent
from metaprod.core import errors

if TYPE_CHECKING:
    from .conftest import Fake, Server


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


DOMAIN_CODES = [
    (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
    (grpc.StatusCode.NOT_FOUND, errors.NotFound),
    (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
    (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
    (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied),
    (grpc.StatusCode.UNAUTHENTICATED, errors.Unauthenticated),
    (grpc.StatusCode.ABORTED, errors.Conflict),
]


@pytest.mark.parametrize(("code", "cls"), DOMAIN_CODES)
def test_status_table(code: grpc.StatusCode, cls: type[errors.DomainError]) -> None:
    assert ERROR_FOR_STATUS[code] is cls
    exc = from_rpc_error(FakeRpcError(code, "the server's words"))
    assert type(exc) is cls and exc.message == "the server's words"


def test_unavailable_and_deadline_and_others() -> None:
    exc = from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down"), address="h:1")
    assert type(exc) is ServiceUnavailable and "h:1" in exc.message and "down" in exc.message
    exc = from_rpc_error(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "slow"), timeout=2)
    assert isinstance(exc, ServiceUnavailable) and isinstance(exc, DeadlineExceeded)
    exc = from_rpc_error(FakeRpcError(grpc.StatusCode.INTERNAL, "boom"))
    assert isinstance(exc, RemoteError) and exc.code is grpc.StatusCode.INTERNAL
    assert exc.message == "internal: boom"


@pytest.mark.parametrize(("code", "cls"), DOMAIN_CODES)
def test_server_abort_maps_to_domain_error(fake: Fake, code: grpc.StatusCode, cls: type) -> None:
    fake.fail("GetFile", code, f"refused: {code.name}")
    with connect(retries=0) as client, pytest.raises(cls, match=f"refused: {code.name}"):
        client.catalog.get("/raw/1")


def test_bearer_token_on_every_call(server: Server) -> None:
    with connect(server.address, "secret-1") as client:
        client.admin.whoami()
        list(client.catalog.find({}))
        client.catalog.register_files([{"lfn": "/x"}])
    assert [m.get("authorization") for m in server.fake.metadata] == ["Bearer secret-1"] * 3


def test_env_defaults_and_no_token(server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    with connect() as client:
        assert client.address == server.address
        client.admin.whoami()
    assert server.fake.metadata[-1]["authorization"] == "Bearer test-token"
    monkeypatch.delenv("METAPROD_TOKEN")
    token_file = tmp_path / "admin.token"
    token_file.write_text("from-file\n")
    monkeypatch.setenv("METAPROD_TOKEN_FILE", str(token_file))
    with connect() as client:
        client.admin.whoami()
    assert server.fake.metadata[-1]["authorization"] == "Bearer from-file"
    with connect(token="") as client:
        client.admin.whoami()
    assert "authorization" not in server.fake.metadata[-1]


def test_idempotency_rule() -> None:
    for method in ("GetFile", "ListFields", "FindFiles", "GetProgress", "WatchProgress", "WhoAmI"):
        assert is_idempotent(method)
    for method in ("AddField", "RegisterFiles", "CreateProduction", "ResetFiles", "Heartbeat", "ReportTaskResult"):
        assert not is_idempotent(method)


def test_reads_are_retried_on_unavailable(fake: Fake) -> None:
    fake.fail("ListFields", grpc.StatusCode.UNAVAILABLE, "restarting", times=2)
    with connect(retries=3, backoff=0.001) as client:
        fields = client.catalog.list_fields()
    assert [f.name for f in fields] == ["datatype", "energy", "run"]
    assert fake.count("ListFields") == 3


def test_retries_give_up(fake: Fake) -> None:
    fake.fail("GetProduction", grpc.StatusCode.UNAVAILABLE, "still down")
    with connect(retries=2, backoff=0.001) as client, pytest.raises(ServiceUnavailable, match="still down"):
        client.productions.get("muon")
    assert fake.count("GetProduction") == 3


def test_writes_and_other_codes_are_not_retried(fake: Fake) -> None:
    fake.fail("AddField", grpc.StatusCode.UNAVAILABLE, "down")
    fake.fail("GetFile", grpc.StatusCode.INTERNAL, "bug")
    with connect(retries=3, backoff=0.001) as client:
        with pytest.raises(ServiceUnavailable):
            client.catalog.add_field("x", "int")
        with pytest.raises(RemoteError, match="bug"):
            client.catalog.get("/raw/1")
    assert fake.count("AddField") == 1
    assert fake.count("GetFile") == 1


def test_deadline(fake: Fake) -> None:
    fake.delays["WhoAmI"] = 0.5
    with connect(timeout=0.05, retries=0) as client, pytest.raises(DeadlineExceeded):
        client.admin.whoami()


def test_unreachable_server(dead_address: str) -> None:
    with connect(dead_address, "t", retries=0) as client, pytest.raises(ServiceUnavailable, match=dead_address):
        client.admin.whoami()


def test_call_policy_backoff_grows_and_is_capped() -> None:
    policy = CallPolicy(backoff=1.0, max_backoff=3.0)
    assert 0.5 <= policy.delay(1) <= 1.0
    assert 1.0 <= policy.delay(2) <= 2.0
    assert 1.5 <= policy.delay(10) <= 3.0


def test_register_files_streams_batches(fake: Fake) -> None:
    files = [{"lfn": f"/f/{i}", "metadata": {"run": i}} for i in range(12)]
    files[0] = CatalogFile(lfn="/f/0", size=5, metadata={"run": 0, "energy": 1.5})
    with connect() as client:
        result = client.catalog.register_files(iter(files), batch_size=5)
    assert (result.registered, result.attached, result.batches) == (12, 6, 3)
    assert fake.batches == [5, 5, 2]
    stored = fake.files["/f/0"]
    assert stored.size == 5 and stored.metadata["energy"].float_value == 1.5


def test_register_files_bad_item_stops_cleanly(fake: Fake, caplog: pytest.LogCaptureFixture) -> None:
    files = [{"lfn": f"/f/{i}"} for i in range(7)] + [{"lfn": "/bad", "metadata": {"x": [1]}}]
    with (
        caplog.at_level(logging.DEBUG),
        connect() as client,
        pytest.raises(errors.InvalidArgument, match=r"/bad: metadata 'x'.*5 file\(s\)"),
    ):
        client.catalog.register_files(files, batch_size=5)
    assert fake.batches == [5]
    assert not [r for r in caplog.records if r.exc_info]  # nothing logged a traceback


def test_register_files_batch_size_must_be_positive(server: Server) -> None:
    with connect() as client, pytest.raises(errors.InvalidArgument):
        client.catalog.register_files([], batch_size=0)


def test_find_streams_and_passes_queries(fake: Fake) -> None:
    with connect() as client:
        files = list(client.catalog.find({"datatype": "raw"}))
        assert [f.lfn for f in files] == ["/raw/1", "/raw/2", "/sim/1"]
        assert files[0].metadata == {"datatype": "raw", "energy": 2.5, "run": 1}
        assert files[2].provenance is not None and files[2].provenance.inputs == ("/raw/1", "/raw/2")
        assert len(list(client.catalog.find("run>=1", limit=1))) == 1
    queries = [r.query for r in fake.requests("FindFiles")]
    assert queries == ['{"datatype": "raw"}', "run>=1"]
    assert fake.requests("FindFiles")[1].limit == 1


def test_find_error_surfaces_while_iterating(fake: Fake) -> None:
    fake.fail("FindFiles", grpc.StatusCode.INVALID_ARGUMENT, "unknown operator '=~' for key 'run'")
    with connect() as client, pytest.raises(errors.InvalidArgument, match="unknown operator"):
        list(client.catalog.find("run=~1"))


def test_find_stream_retried_before_first_message(fake: Fake) -> None:
    fake.fail("FindFiles", grpc.StatusCode.UNAVAILABLE, "blip", times=1)
    with connect(backoff=0.001) as client:
        assert len(list(client.catalog.find({}))) == 3
    assert fake.count("FindFiles") == 2


def test_set_metadata_and_get(fake: Fake) -> None:
    with connect() as client:
        f = client.catalog.set_metadata("/raw/1", {"run": 9, "site": "CERN"})
        assert f.metadata["run"] == 9 and f.metadata["site"] == "CERN"
        assert client.catalog.get("/raw/1").metadata["run"] == 9


def test_watch_progress(fake: Fake) -> None:
    with connect() as client:
        snapshots = list(client.productions.watch("muon", interval=0.5))
    assert [s.status for s in snapshots] == ["Active", "Active", "Completed", "Active"]
    assert fake.requests("WatchProgress")[0].interval_seconds == 0.5


def test_transformation_api(fake: Fake) -> None:
    with connect() as client:
        detail = client.transformations.get("muon", "reco")
        assert detail.transformation.parents == ("gen",)
        assert detail.files == {"Processed": 2, "Unused": 3}
        assert client.transformations.stop("muon", "reco", kill=True).status == "Stopped"
        assert client.transformations.reset("muon", "reco") == 4
        assert client.transformations.heartbeat(7, 1) is True
        report = client.transformations.report_result(
            7, 1, success=True, outputs=[{"lfn": "/out/1", "metadata": {"datatype": "reco"}}]
        )
        assert report.accepted and report.status == "Done"
        created = client.transformations.create("muon", {"name": "reco", "parents": ["gen"]})
        assert created.transformation.name == "reco"
    request = fake.requests("SetTransformationStatus")[0]
    assert (request.ref.production, request.ref.name, request.status, request.kill) == ("muon", "reco", "Stopped", True)
    assert fake.requests("ReportTaskResult")[0].outputs[0].lfn == "/out/1"


def test_production_and_admin_api(fake: Fake) -> None:
    with connect() as client:
        created = client.productions.create({"production": "p1"})
        assert created.production.name == "p1" and created.warnings[0].transformations == ("a", "b")
        assert not client.productions.validate("bad: yes").ok
        assert client.productions.stop("muon", kill=True).status == "Stopped"
        assert [p.name for p in client.productions.list()] == ["muon", "other"]
        assert client.productions.progress("muon").transformations[1].files["Unused"] == 2
        assert client.admin.create_token("bob", "user").secret == "s3cr3t-value"
        assert client.admin.list_agents()[0].alive
        assert client.admin.revoke_token("bob").revoked
        assert client.health() == "SERVING"
    assert fake.requests("StopProduction")[0].kill is True
