"""metaprod.clients: the typed Python API over gRPC and the `metaprod` CLI.

from metaprod.clients import connect

with connect() as client:  # $METAPROD_ADDRESS, $METAPROD_TOKEN
    client.catalog.add_field("run", "int")
    client.catalog.register_files([{"lfn": "/raw/1", "metadata": {"run": 1}}])
    for f in client.catalog.find({"run": {">=": 1}}):
        print(f.lfn, f.metadata)
"""

import os

# gRPC's C core logs a failed TLS handshake on stderr (at INFO) beside the CLI's one-line
# error: only its errors are wanted. Read when grpc loads, so set first; an explicit value wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from metaprod.clients.api import AdminAPI, CatalogAPI, ProductionsAPI, TransformationsAPI
from metaprod.clients.client import Client, connect
from metaprod.clients.errors import DeadlineExceeded, RemoteError, ServiceUnavailable
from metaprod.clients.types import (
    AddFieldResult,
    Agent,
    CatalogFile,
    Field,
    Finding,
    Identity,
    NewToken,
    Production,
    ProductionCreated,
    Progress,
    Provenance,
    RegisterResult,
    Task,
    TaskLog,
    TaskReport,
    Token,
    Transformation,
    TransformationCreated,
    TransformationDetail,
    TransformationFile,
    TransformationProgress,
    ValidationResult,
)

__all__ = [
    "AddFieldResult",
    "AdminAPI",
    "Agent",
    "CatalogAPI",
    "CatalogFile",
    "Client",
    "DeadlineExceeded",
    "Field",
    "Finding",
    "Identity",
    "NewToken",
    "Production",
    "ProductionCreated",
    "ProductionsAPI",
    "Progress",
    "Provenance",
    "RegisterResult",
    "RemoteError",
    "ServiceUnavailable",
    "Task",
    "TaskLog",
    "TaskReport",
    "Token",
    "Transformation",
    "TransformationCreated",
    "TransformationDetail",
    "TransformationFile",
    "TransformationProgress",
    "TransformationsAPI",
    "ValidationResult",
    "connect",
]
