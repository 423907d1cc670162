"""A small real in-process gRPC server with fake servicers returning canned answers.

Tests make a method fail with `fake.fail("GetFile", grpc.StatusCode.NOT_FOUND, "...")`, read
what the servicers received in `fake.calls` / `fake.metadata`, and point the client or the
CLI at `server_address`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from metaprod.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    production_pb2,
    production_pb2_grpc,
    transformation_pb2,
    transformation_pb2_grpc,
)

TS = Timestamp(seconds=1_700_000_000)


def mv(value: int | float | str) -> common_pb2.MetaValue:
    if isinstance(value, int):
        return common_pb2.MetaValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.MetaValue(float_value=value)
    return common_pb2.MetaValue(str_value=value)


def make_file(lfn: str, metadata: dict[str, Any], provenance: catalog_pb2.Provenance | None = None):
    msg = catalog_pb2.CatalogFile(
        lfn=lfn,
        pfn=f"file:///data{lfn}",
        size=1024,
        checksum="ad:0001",
        metadata={k: mv(v) for k, v in metadata.items()},
        created_at=TS,
    )
    if provenance is not None:
        msg.provenance.CopyFrom(provenance)
        msg.has_provenance = True
    return msg


def make_transformation(name: str, status: str = "Active", parents: tuple[str, ...] = ()):
    return transformation_pb2.Transformation(
        id=1 if name == "gen" else 2,
        production="muon",
        name=name,
        status=status,
        parents=list(parents),
        input_query='{"datatype": "sim"}' if parents else "",
        output_query='{"datatype": "reco"}',
        plugin="standard",
        group_size=2,
        tasks=0 if parents else 5,
        max_attempts=3,
        backend="local",
        command="./run.sh",
        spec=json.dumps({"name": name}),
        created_at=TS,
    )


def make_production(name: str = "muon", status: str = "Active"):
    return production_pb2.Production(
        name=name,
        description="a study",
        status=status,
        owner="alice",
        transformations=[make_transformation("gen"), make_transformation("reco", parents=("gen",))],
        created_at=TS,
        updated_at=TS,
    )


def make_progress(status: str, percent: float):
    return production_pb2.Progress(
        name="muon",
        status=status,
        percent=percent,
        transformations=[
            production_pb2.TransformationProgress(
                name="gen", status="Completed", files={}, tasks={"Done": 5}, percent=100.0
            ),
            production_pb2.TransformationProgress(
                name="reco",
                status=status,
                files={"Unused": 2, "Processed": 3},
                tasks={"Running": 1, "Done": 1},
                percent=percent,
            ),
        ],
    )


@dataclass
class Fake:
    """Shared state of the fake servicers (reset before every test)."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    errors: dict[str, list[tuple[grpc.StatusCode, str, int | None]]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    batches: list[int] = field(default_factory=list)
    files: dict[str, catalog_pb2.CatalogFile] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.metadata.clear()
            self.errors.clear()
            self.delays.clear()
            self.batches.clear()
            self.files = {
                "/raw/1": make_file("/raw/1", {"run": 1, "datatype": "raw", "energy": 2.5}),
                "/raw/2": make_file("/raw/2", {"run": 2, "datatype": "raw", "energy": 7.5}),
                "/sim/1": make_file(
                    "/sim/1",
                    {"datatype": "sim"},
                    catalog_pb2.Provenance(
                        production="muon", transformation="gen", task=7, attempt=2, inputs=["/raw/1", "/raw/2"]
                    ),
                ),
            }

    def fail(self, method: str, code: grpc.StatusCode, message: str, times: int | None = None) -> None:
        """Make `method` abort with `code` (`times` calls, or always when None)."""
        self.errors.setdefault(method, []).append((code, message, times))

    def count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    def requests(self, method: str) -> list[Any]:
        return [req for name, req in self.calls if name == method]

    def enter(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.calls.append((method, request))
            self.metadata.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
            delay = self.delays.get(method, 0.0)
            queue = self.errors.get(method, [])
            error = None
            if queue:
                code, message, times = queue[0]
                error = (code, message)
                if times is not None:
                    if times <= 1:
                        queue.pop(0)
                    else:
                        queue[0] = (code, message, times - 1)
        if delay:
            time.sleep(delay)
        if error is not None:
            context.abort(*error)


class Catalog(catalog_pb2_grpc.FileCatalogServicer):
    def __init__(self, fake: Fake) -> None:
        self.fake = fake

    def AddField(self, request, context):
        self.fake.enter("AddField", request, context)
        return catalog_pb2.AddFieldResponse(
            field=catalog_pb2.Field(name=request.name, type=request.type), created=request.name != "run"
        )

    def ListFields(self, request, context):
        self.fake.enter("ListFields", request, context)
        fields = [("datatype", "str"), ("energy", "float"), ("run", "int")]
        return catalog_pb2.ListFieldsResponse(fields=[catalog_pb2.Field(name=n, type=t) for n, t in fields])

    def RegisterFiles(self, request_iterator, context):
        self.fake.enter("RegisterFiles", None, context)
        total = 0
        for request in request_iterator:
            self.fake.batches.append(len(request.files))
            for f in request.files:
                self.fake.files[f.lfn] = f
            total += len(request.files)
        return catalog_pb2.RegisterFilesResponse(registered=total, attached=total // 2)

    def FindFiles(self, request, context):
        self.fake.enter("FindFiles", request, context)
        files = sorted(self.fake.files.values(), key=lambda f: f.lfn)
        if request.limit:
            files = files[: request.limit]
        for start in range(0, len(files), 2):  # batches of 2
            yield catalog_pb2.FindFilesResponse(files=files[start : start + 2])

    def GetFile(self, request, context):
        self.fake.enter("GetFile", request, context)
        if request.lfn not in self.fake.files:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no file {request.lfn}")
        return catalog_pb2.GetFileResponse(file=self.fake.files[request.lfn])

    def SetMetadata(self, request, context):
        self.fake.enter("SetMetadata", request, context)
        f = self.fake.files[request.lfn]
        for key, value in request.metadata.items():
            f.metadata[key].CopyFrom(value)
        return catalog_pb2.SetMetadataResponse(file=f)


class Transformations(transformation_pb2_grpc.TransformationServiceServicer):
    def __init__(self, fake: Fake) -> None:
        self.fake = fake

    def CreateTransformation(self, request, context):
        self.fake.enter("CreateTransformation", request, context)
        return transformation_pb2.CreateTransformationResponse(transformation=make_transformation("reco"))

    def GetTransformation(self, request, context):
        self.fake.enter("GetTransformation", request, context)
        return transformation_pb2.GetTransformationResponse(
            transformation=make_transformation(request.ref.name, parents=("gen",)),
            files={"Unused": 3, "Processed": 2},
            tasks={"Done": 1, "Failed": 1},
        )

    def ListTransformations(self, request, context):
        self.fake.enter("ListTransformations", request, context)
        items = [make_transformation("gen"), make_transformation("reco", parents=("gen",))]
        return transformation_pb2.ListTransformationsResponse(transformations=items)

    def SetTransformationStatus(self, request, context):
        self.fake.enter("SetTransformationStatus", request, context)
        return transformation_pb2.SetTransformationStatusResponse(
            transformation=make_transformation(request.ref.name, status=request.status)
        )

    def ListTransformationFiles(self, request, context):
        self.fake.enter("ListTransformationFiles", request, context)
        files = [
            transformation_pb2.TransformationFile(lfn="/sim/1", status="Processed", task=7),
            transformation_pb2.TransformationFile(lfn="/sim/2", status="Problematic", task=8, error_count=3),
        ]
        if request.status:
            files = [f for f in files if f.status == request.status]
        return transformation_pb2.ListTransformationFilesResponse(files=files)

    def ListTasks(self, request, context):
        self.fake.enter("ListTasks", request, context)
        task = transformation_pb2.Task(
            id=7, index=0, status="Done", attempt=2, inputs=["/sim/1"], transformation=request.ref.name
        )
        return transformation_pb2.ListTasksResponse(tasks=[task])

    def ResetFiles(self, request, context):
        self.fake.enter("ResetFiles", request, context)
        return transformation_pb2.ResetFilesResponse(reset=len(request.lfns) or 4)

    def GetTaskLog(self, request, context):
        self.fake.enter("GetTaskLog", request, context)
        return transformation_pb2.GetTaskLogResponse(
            task=request.task, attempt=request.attempt or 2, log="line one\n[bold]line two[/bold]\n"
        )

    def Heartbeat(self, request, context):
        self.fake.enter("Heartbeat", request, context)
        return transformation_pb2.HeartbeatResponse(proceed=request.attempt == 1)

    def ReportTaskResult(self, request, context):
        self.fake.enter("ReportTaskResult", request, context)
        return transformation_pb2.ReportTaskResultResponse(accepted=True, status="Done")


class Productions(production_pb2_grpc.ProductionManagerServicer):
    def __init__(self, fake: Fake) -> None:
        self.fake = fake

    def CreateProduction(self, request, context):
        self.fake.enter("CreateProduction", request, context)
        name = yaml.safe_load(request.spec).get("production", "muon")
        warning = common_pb2.Finding(code="undeclared-link", transformations=["a", "b"], key="k", message="hm")
        return production_pb2.CreateProductionResponse(
            production=make_production(name, status="New"), warnings=[warning]
        )

    def ValidateProduction(self, request, context):
        self.fake.enter("ValidateProduction", request, context)
        if "bad" in request.spec:
            error = common_pb2.Finding(
                code="no-intersection", transformations=["gen", "reco"], key="energy", message="energy clash"
            )
            return production_pb2.ValidateProductionResponse(ok=False, errors=[error])
        warning = common_pb2.Finding(code="uncovered-input", transformations=["reco"], message="not covered")
        return production_pb2.ValidateProductionResponse(ok=True, warnings=[warning])

    def AddTransformation(self, request, context):
        self.fake.enter("AddTransformation", request, context)
        return production_pb2.AddTransformationResponse(transformation=make_transformation("merge", parents=("reco",)))

    def StartProduction(self, request, context):
        self.fake.enter("StartProduction", request, context)
        return production_pb2.StartProductionResponse(production=make_production(request.name, "Active"))

    def StopProduction(self, request, context):
        self.fake.enter("StopProduction", request, context)
        return production_pb2.StopProductionResponse(production=make_production(request.name, "Stopped"))

    def DeleteProduction(self, request, context):
        self.fake.enter("DeleteProduction", request, context)
        return production_pb2.DeleteProductionResponse(production=make_production(request.name, "Cleaning"))

    def GetProduction(self, request, context):
        self.fake.enter("GetProduction", request, context)
        return production_pb2.GetProductionResponse(production=make_production(request.name))

    def ListProductions(self, request, context):
        self.fake.enter("ListProductions", request, context)
        return production_pb2.ListProductionsResponse(productions=[make_production(), make_production("other")])

    def GetProgress(self, request, context):
        self.fake.enter("GetProgress", request, context)
        return production_pb2.GetProgressResponse(progress=make_progress("Active", 40.0))

    def WatchProgress(self, request, context):
        self.fake.enter("WatchProgress", request, context)
        for status, percent in (("Active", 10.0), ("Active", 50.0), ("Completed", 100.0), ("Active", 1.0)):
            yield production_pb2.WatchProgressResponse(progress=make_progress(status, percent))


class Admin(admin_pb2_grpc.AdminServicer):
    def __init__(self, fake: Fake) -> None:
        self.fake = fake

    def CreateToken(self, request, context):
        self.fake.enter("CreateToken", request, context)
        token = admin_pb2.Token(id=3, name=request.name, role=request.role, owner=request.owner or request.name)
        if request.HasField("expires_at"):
            token.expires_at.CopyFrom(request.expires_at)
        return admin_pb2.CreateTokenResponse(token=token, secret="s3cr3t-value")

    def ListTokens(self, request, context):
        self.fake.enter("ListTokens", request, context)
        return admin_pb2.ListTokensResponse(
            tokens=[admin_pb2.Token(id=1, name="admin", role="admin", owner="admin", created_at=TS)]
        )

    def RevokeToken(self, request, context):
        self.fake.enter("RevokeToken", request, context)
        return admin_pb2.RevokeTokenResponse(token=admin_pb2.Token(id=2, name=request.name, revoked=True))

    def ListAgents(self, request, context):
        self.fake.enter("ListAgents", request, context)
        agent = admin_pb2.Agent(
            name="TaskAgent", host="node1", pid=42, started_at=TS, last_beat=TS, last_status="ok", alive=True
        )
        return admin_pb2.ListAgentsResponse(agents=[agent])

    def WhoAmI(self, request, context):
        self.fake.enter("WhoAmI", request, context)
        return admin_pb2.WhoAmIResponse(name="admin", role="admin", owner="admin")


@pytest.fixture(autouse=True)
def _no_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI tests see only the command plugins they install themselves."""
    from metaprod.clients import cli

    monkeypatch.setattr(cli, "plugin_entry_points", list)


@dataclass
class Server:
    fake: Fake
    address: str


@pytest.fixture(scope="session")
def _server() -> Iterator[Server]:
    fake = Fake()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    catalog_pb2_grpc.add_FileCatalogServicer_to_server(Catalog(fake), server)
    transformation_pb2_grpc.add_TransformationServiceServicer_to_server(Transformations(fake), server)
    production_pb2_grpc.add_ProductionManagerServicer_to_server(Productions(fake), server)
    admin_pb2_grpc.add_AdminServicer_to_server(Admin(fake), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield Server(fake=fake, address=f"127.0.0.1:{port}")
    finally:
        server.stop(None).wait()


@pytest.fixture
def server(_server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    _server.fake.reset()
    monkeypatch.setenv("METAPROD_ADDRESS", _server.address)
    monkeypatch.setenv("METAPROD_TOKEN", "test-token")
    monkeypatch.delenv("METAPROD_TOKEN_FILE", raising=False)
    return _server


@pytest.fixture
def fake(server: Server) -> Fake:
    return server.fake


@pytest.fixture
def dead_address() -> str:
    """An address where nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"
