"""The FileCatalog service over real gRPC: fields, streamed registration, metaquery search,
metadata updates, and refusals that leave nothing behind."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
import pytest
from metaprod.services import catalog as catalog_service
from metaprod.v1 import catalog_pb2 as pb
from metaprod.v1 import catalog_pb2_grpc, common_pb2

# The `server` fixture (tests/integration/conftest.py) is a RunningServer.
RunningServer = Any

FIELDS = {"run": "int", "energy": "float", "datatype": "str", "site": "str"}


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def stub(server: RunningServer) -> Iterator[catalog_pb2_grpc.FileCatalogStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield catalog_pb2_grpc.FileCatalogStub(channel)


@pytest.fixture
def admin(server: RunningServer) -> tuple[tuple[str, str], ...]:
    return auth(server.admin_token)


def value(v: Any) -> common_pb2.MetaValue:
    if isinstance(v, bool):
        raise TypeError(v)
    if isinstance(v, int):
        return common_pb2.MetaValue(int_value=v)
    if isinstance(v, float):
        return common_pb2.MetaValue(float_value=v)
    return common_pb2.MetaValue(str_value=v)


def pb_file(lfn: str, metadata: dict[str, Any], **kw: Any) -> pb.CatalogFile:
    return pb.CatalogFile(lfn=lfn, metadata={k: value(v) for k, v in metadata.items()}, **kw)


def requests(files: Sequence[pb.CatalogFile], per_request: int) -> Iterator[pb.RegisterFilesRequest]:
    for start in range(0, len(files), per_request):
        yield pb.RegisterFilesRequest(files=files[start : start + per_request])


def plain(v: common_pb2.MetaValue) -> Any:
    kind = v.WhichOneof("kind")
    assert kind is not None
    return getattr(v, kind)


def find(stub: catalog_pb2_grpc.FileCatalogStub, md: Any, query: str, **kw: Any) -> list[pb.CatalogFile]:
    return [f for batch in stub.FindFiles(pb.FindFilesRequest(query=query, **kw), metadata=md) for f in batch.files]


def lfns(stub: catalog_pb2_grpc.FileCatalogStub, md: Any, query: str, **kw: Any) -> list[str]:
    return [f.lfn for f in find(stub, md, query, **kw)]


def declare(stub: catalog_pb2_grpc.FileCatalogStub, md: Any) -> None:
    for name, ftype in FIELDS.items():
        stub.AddField(pb.AddFieldRequest(name=name, type=ftype), metadata=md)


def metadata_of(i: int) -> dict[str, Any]:
    md: dict[str, Any] = {"run": i, "energy": i / 4, "datatype": "raw" if i % 3 else "sim"}
    if i % 5:  # every fifth file has no site
        md["site"] = ["CERN", "IN2P3", "FNAL"][i % 3]
    return md


@pytest.fixture
def populated(stub: catalog_pb2_grpc.FileCatalogStub, admin: Any) -> dict[str, dict[str, Any]]:
    declare(stub, admin)
    files = {f"/data/run/{i:03d}.raw": metadata_of(i) for i in range(40)}
    resp = stub.RegisterFiles(requests([pb_file(lfn, md) for lfn, md in files.items()], 6), metadata=admin)
    assert (resp.registered, resp.attached) == (40, 0)
    return files


def expected(files: dict[str, dict[str, Any]], pred: Any) -> list[str]:
    return [lfn for lfn, md in files.items() if pred(md)]


def test_fields(stub: catalog_pb2_grpc.FileCatalogStub, admin: Any) -> None:
    first = stub.AddField(pb.AddFieldRequest(name="run", type="int"), metadata=admin)
    assert (first.field.name, first.field.type, first.created) == ("run", "int", True)
    again = stub.AddField(pb.AddFieldRequest(name="run", type="int"), metadata=admin)
    assert again.created is False
    stub.AddField(pb.AddFieldRequest(name="energy", type="float"), metadata=admin)
    with pytest.raises(grpc.RpcError) as clash:
        stub.AddField(pb.AddFieldRequest(name="run", type="str"), metadata=admin)
    assert clash.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "int" in clash.value.details() and "str" in clash.value.details()
    for name, ftype in [("x", "complex"), ("", "int"), ("bad name", "int"), ("in", "str"), ("9lives", "int")]:
        with pytest.raises(grpc.RpcError) as bad:
            stub.AddField(pb.AddFieldRequest(name=name, type=ftype), metadata=admin)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, ftype)
    listed = stub.ListFields(pb.ListFieldsRequest(), metadata=admin).fields
    assert [(f.name, f.type) for f in listed] == [("energy", "float"), ("run", "int")]


def test_register_in_several_batches_wakes_agents(
    server: RunningServer, stub: catalog_pb2_grpc.FileCatalogStub, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    declare(stub, admin)
    monkeypatch.setattr(catalog_service, "REGISTER_BATCH", 7)
    woken: list[str] = []
    server.server.context.on_new_work.append(woken.append)
    files = [
        pb_file(f"/b/{i}", metadata_of(i), pfn=f"root://se/{i}", size=i, checksum=f"ad:{i:08x}") for i in range(30)
    ]
    resp = stub.RegisterFiles(requests(files, 4), metadata=admin)
    assert resp.registered == 30
    assert woken == ["files"] * 5  # ceil(30 / 7) transactions
    found = find(stub, admin, "", with_metadata=True)
    assert [f.lfn for f in found] == [f"/b/{i}" for i in range(30)]  # catalog order
    f7 = found[7]
    assert (f7.pfn, f7.size, f7.checksum) == ("root://se/7", 7, "ad:00000007")
    assert {k: plain(v) for k, v in f7.metadata.items()} == metadata_of(7)
    assert f7.created_at.seconds > 0 and not f7.has_provenance


def test_find_every_operator(stub: catalog_pb2_grpc.FileCatalogStub, admin: Any, populated: dict[str, Any]) -> None:
    cases: list[tuple[str, Any]] = [
        ('{"run": 7}', lambda m: m["run"] == 7),
        ("run=7", lambda m: m["run"] == 7),
        ('{"run": {"!=": 7}}', lambda m: m["run"] != 7),
        ("run<5", lambda m: m["run"] < 5),
        ("run<=5", lambda m: m["run"] <= 5),
        ("run>33", lambda m: m["run"] > 33),
        ("run>=33", lambda m: m["run"] >= 33),
        ("run in 1,2,39,99", lambda m: m["run"] in (1, 2, 39)),
        (
            '{"run": {"nin": [1, 2, 3]}, "energy": {">": 8.5}}',
            lambda m: m["run"] not in (1, 2, 3) and m["energy"] > 8.5,
        ),
        ("site=CERN,FNAL", lambda m: m.get("site") in ("CERN", "FNAL")),
        ("site!=CERN", lambda m: "site" in m and m["site"] != "CERN"),  # a missing key never matches
        ("site nin CERN", lambda m: "site" in m and m["site"] != "CERN"),
        (
            "datatype=raw run>=10 run<20 energy>2.6",
            lambda m: m["datatype"] == "raw" and 10 <= m["run"] < 20 and m["energy"] > 2.6,
        ),
        ('{"run": {">": 2.5, "<": 4.5}}', lambda m: 2.5 < m["run"] < 4.5),
        ('{"site": []}', lambda m: False),
        ("{}", lambda m: True),
        ("", lambda m: True),
        ("run>30 run<20", lambda m: False),
    ]
    for query, pred in cases:
        assert lfns(stub, admin, query) == expected(populated, pred), query
    assert lfns(stub, admin, "run>=10", limit=3) == expected(populated, lambda m: m["run"] >= 10)[:3]
    bare = find(stub, admin, "run=3")
    assert len(bare) == 1 and not bare[0].metadata  # with_metadata is off by default
    full = find(stub, admin, "run=3", with_metadata=True)
    assert {k: plain(v) for k, v in full[0].metadata.items()} == populated["/data/run/003.raw"]


def test_find_streams_batches(
    stub: catalog_pb2_grpc.FileCatalogStub, admin: Any, populated: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_service, "FIND_BATCH", 8)
    batches = list(stub.FindFiles(pb.FindFilesRequest(query="run>=1"), metadata=admin))
    assert [len(b.files) for b in batches] == [8, 8, 8, 8, 7]


def test_find_selects_ids_a_chunk_at_a_time_in_catalog_order(
    stub: catalog_pb2_grpc.FileCatalogStub, admin: Any, populated: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ids come a chunk at a time (keyset on the id), each chunk's rows in batches: every
    file once, in catalog order, a limit counted across chunks; a range of values drives."""
    monkeypatch.setattr(catalog_service, "FIND_BATCH", 4)
    monkeypatch.setattr(catalog_service.catalog, "FIND_ID_CHUNK", 10)
    everything = lfns(stub, admin, "run>=1")
    assert everything == expected(populated, lambda m: m["run"] >= 1) and len(everything) == 39
    batches = list(stub.FindFiles(pb.FindFilesRequest(query="run>=1"), metadata=admin))
    assert [len(b.files) for b in batches] == [4, 4, 2] * 3 + [4, 4, 1]
    assert lfns(stub, admin, "run>=1", limit=23) == everything[:23]
    assert lfns(stub, admin, "run>=1", limit=20) == everything[:20]


def test_get_and_set_metadata(stub: catalog_pb2_grpc.FileCatalogStub, admin: Any, populated: dict[str, Any]) -> None:
    lfn = "/data/run/005.raw"
    got = stub.GetFile(pb.GetFileRequest(lfn=lfn), metadata=admin).file
    assert got.lfn == "/data/run/005.raw" and not got.has_provenance and not got.HasField("provenance")
    assert {k: plain(v) for k, v in got.metadata.items()} == populated["/data/run/005.raw"]
    changed = stub.SetMetadata(
        pb.SetMetadataRequest(lfn="/data/run/005.raw", metadata={"site": value("RAL"), "energy": value(99)}),
        metadata=admin,
    ).file
    assert {k: plain(v) for k, v in changed.metadata.items()} == {
        "run": 5,
        "energy": 99.0,
        "datatype": "raw",
        "site": "RAL",
    }
    assert lfns(stub, admin, "site=RAL") == ["/data/run/005.raw"]
    assert lfns(stub, admin, "energy>=99") == ["/data/run/005.raw"]
    for request, code in [
        (pb.SetMetadataRequest(lfn="/nope", metadata={"run": value(1)}), grpc.StatusCode.NOT_FOUND),
        (pb.SetMetadataRequest(lfn=lfn, metadata={"colour": value("red")}), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.SetMetadataRequest(lfn=lfn, metadata={"run": value("x")}), grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            stub.SetMetadata(request, metadata=admin)
        assert err.value.code() == code
    again = stub.GetFile(pb.GetFileRequest(lfn="/data/run/005.raw"), metadata=admin).file
    assert {k: plain(v) for k, v in again.metadata.items()} == {k: plain(v) for k, v in changed.metadata.items()}
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetFile(pb.GetFileRequest(lfn="/data/run/005.raw "), metadata=admin)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "query",
    ["run>>3", "run", '{"run": {"~": 3}}', '{"run": ', '["run"]', "colour=red", "run=abc", '{"run": {"in": 3}}'],
)
def test_malformed_query(
    stub: catalog_pb2_grpc.FileCatalogStub, admin: Any, populated: dict[str, Any], query: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        find(stub, admin, query)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details()


BAD_BATCHES: list[tuple[str, list[pb.CatalogFile], grpc.StatusCode, str]] = [
    (
        "undeclared field",
        [pb_file("/new/1", {"run": 1}), pb_file("/new/2", {"colour": "red"})],
        grpc.StatusCode.INVALID_ARGUMENT,
        "colour",
    ),
    ("str for int", [pb_file("/new/1", {"run": "one"})], grpc.StatusCode.INVALID_ARGUMENT, "run"),
    ("float for int", [pb_file("/new/1", {"run": 1.0})], grpc.StatusCode.INVALID_ARGUMENT, "run"),
    ("int for str", [pb_file("/new/1", {"site": 3})], grpc.StatusCode.INVALID_ARGUMENT, "site"),
    ("long str", [pb_file("/new/1", {"site": "x" * 256})], grpc.StatusCode.INVALID_ARGUMENT, "site"),
    ("empty lfn", [pb_file("/new/1", {}), pb_file("", {})], grpc.StatusCode.INVALID_ARGUMENT, "LFN"),
    (
        "empty value",
        [pb.CatalogFile(lfn="/new/1", metadata={"run": common_pb2.MetaValue()})],
        grpc.StatusCode.INVALID_ARGUMENT,
        "run",
    ),
    ("provenance", [pb_file("/new/1", {}, has_provenance=True)], grpc.StatusCode.INVALID_ARGUMENT, "provenance"),
    (
        "duplicate in batch",
        [pb_file("/new/1", {}), pb_file("/new/2", {}), pb_file("/new/1", {})],
        grpc.StatusCode.ALREADY_EXISTS,
        "/new/1",
    ),
    (
        "already catalogued",
        [pb_file("/new/1", {}), pb_file("/data/run/004.raw", {"run": 4})],
        grpc.StatusCode.ALREADY_EXISTS,
        "/data/run/004.raw",
    ),
]


@pytest.mark.parametrize(("files", "code", "mention"), [b[1:] for b in BAD_BATCHES], ids=[b[0] for b in BAD_BATCHES])
def test_bad_registration_stores_nothing(
    stub: catalog_pb2_grpc.FileCatalogStub,
    admin: Any,
    populated: dict[str, Any],
    files: list[pb.CatalogFile],
    code: grpc.StatusCode,
    mention: str,
) -> None:
    before = lfns(stub, admin, "")
    with pytest.raises(grpc.RpcError) as err:
        stub.RegisterFiles(requests(files, 2), metadata=admin)
    assert err.value.code() == code
    assert mention in err.value.details()
    assert lfns(stub, admin, "") == before


def test_failed_batch_keeps_earlier_batches(
    stub: catalog_pb2_grpc.FileCatalogStub, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    declare(stub, admin)
    monkeypatch.setattr(catalog_service, "REGISTER_BATCH", 5)
    files = [pb_file(f"/s/{i}", {"run": i}) for i in range(12)]
    files[7] = pb_file("/s/7", {"run": "seven"})
    with pytest.raises(grpc.RpcError) as err:
        stub.RegisterFiles(requests(files, 3), metadata=admin)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "5 files of earlier batches" in err.value.details()
    assert lfns(stub, admin, "") == [f"/s/{i}" for i in range(5)]


def test_authentication_and_roles(
    server: RunningServer, stub: catalog_pb2_grpc.FileCatalogStub, admin: Any, populated: dict[str, Any]
) -> None:
    reader = auth(server.token("reader", "reader"))
    user = auth(server.token("alice", "user"))
    for md in [(), auth("not-a-token"), (("authorization", "Basic abc"),)]:
        with pytest.raises(grpc.RpcError) as err:
            stub.ListFields(pb.ListFieldsRequest(), metadata=md)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            stub.RegisterFiles(requests([pb_file("/anon/1", {})], 1), metadata=md)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            find(stub, md, "")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert len(lfns(stub, reader, "run<10")) == 10
    assert stub.GetFile(pb.GetFileRequest(lfn="/data/run/001.raw"), metadata=reader).file.lfn == "/data/run/001.raw"
    set_run = pb.SetMetadataRequest(lfn="/data/run/001.raw", metadata={"run": value(5)})
    refused = [
        lambda: stub.RegisterFiles(requests([pb_file("/r/1", {"run": 1})], 1), metadata=reader),
        lambda: stub.AddField(pb.AddFieldRequest(name="colour", type="str"), metadata=reader),
        lambda: stub.SetMetadata(set_run, metadata=reader),
    ]
    for call in refused:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert lfns(stub, admin, "run=1") == ["/data/run/001.raw"]
    assert [f.name for f in stub.ListFields(pb.ListFieldsRequest(), metadata=admin).fields] == sorted(FIELDS)
    assert stub.RegisterFiles(requests([pb_file("/u/1", {"run": 1})], 1), metadata=user).registered == 1
    assert lfns(stub, admin, "run=1") == ["/data/run/001.raw", "/u/1"]


def test_json_query_round_trip(stub: catalog_pb2_grpc.FileCatalogStub, admin: Any, populated: dict[str, Any]) -> None:
    query = {"datatype": "sim", "run": {">=": 3, "<": 30}, "site": {"in": ["CERN", "FNAL"]}}
    want = expected(
        populated, lambda m: m["datatype"] == "sim" and 3 <= m["run"] < 30 and m.get("site") in ("CERN", "FNAL")
    )
    assert want and lfns(stub, admin, json.dumps(query)) == want
    assert lfns(stub, admin, "datatype=sim run>=3 run<30 site in CERN,FNAL") == want
