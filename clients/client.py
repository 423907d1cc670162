"""`connect()` and the Client: one channel, four service facades."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc
from grpc_health.v1 import health_pb2
from metaprod.clients.api import AdminAPI, CatalogAPI, ProductionsAPI, TransformationsAPI
from metaprod.clients.errors import RemoteError
from metaprod.clients.tls import channel_credentials
from metaprod.clients.transport import DEFAULT_ADDRESS, CallPolicy, Transport

ADDRESS_ENV = "METAPROD_ADDRESS"
TOKEN_ENV = "METAPROD_TOKEN"
TOKEN_FILE_ENV = "METAPROD_TOKEN_FILE"


def default_address() -> str:
    return os.environ.get(ADDRESS_ENV, "").strip() or DEFAULT_ADDRESS


def default_token() -> str | None:
    """METAPROD_TOKEN, else the content of the file METAPROD_TOKEN_FILE names, else None."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    path = os.environ.get(TOKEN_FILE_ENV, "").strip()
    if path:
        return Path(path).expanduser().read_text(encoding="utf-8").strip() or None
    return None


class Client:
    """The typed metaprod API over gRPC. Use `connect()`; close it (or use `with`)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self.catalog = CatalogAPI(transport)
        self.transformations = TransformationsAPI(transport)
        self.productions = ProductionsAPI(transport)
        self.admin = AdminAPI(transport)

    @property
    def address(self) -> str:
        return self._transport.address

    @property
    def policy(self) -> CallPolicy:
        return self._transport.policy

    def health(self, service: str = "") -> str:
        """The gRPC health status of the server ("" = overall): SERVING, NOT_SERVING, ...
        "UNIMPLEMENTED" when the server has no health service."""
        request = health_pb2.HealthCheckRequest(service=service)
        try:
            resp = self._transport.unary("grpc.health.v1.Health", "Check", request, health_pb2.HealthCheckResponse)
        except RemoteError as exc:
            if exc.code == grpc.StatusCode.UNIMPLEMENTED:
                return "UNIMPLEMENTED"
            raise
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect(
    address: str | None = None,
    token: str | None = None,
    *,
    timeout: float | None = 30.0,
    retries: int = 3,
    backoff: float = 0.2,
    stream_timeout: float | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> Client:
    """A Client for the services at `address` (default: $METAPROD_ADDRESS or 127.0.0.1:50051)
    authenticated by `token` (default: $METAPROD_TOKEN, or the file $METAPROD_TOKEN_FILE).

    `timeout` is the deadline of each unary call; idempotent reads are retried `retries`
    times on UNAVAILABLE / DEADLINE_EXCEEDED with exponential backoff from `backoff` seconds.
    The channel is TLS when `credentials` are given or $METAPROD_TLS_CA names a CA file
    (metaprod.clients.tls). No network traffic happens until the first call.
    """
    policy = CallPolicy(timeout=timeout, retries=retries, backoff=backoff, stream_timeout=stream_timeout)
    if credentials is None:
        credentials = channel_credentials()
    return Client(
        Transport(
            address or default_address(),
            token if token is not None else default_token(),
            policy=policy,
            credentials=credentials,
            options=options,
        )
    )
