"""Server bootstrap: every servicer on one gRPC server with health, reflection, the auth and
error interceptors, and a graceful stop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from metaprod.core import limits
from metaprod.db.session import Database
from metaprod.services.auth import Authenticator, AuthInterceptor
from metaprod.services.errors import DomainErrorInterceptor, EntryErrorInterceptor
from metaprod.services.metrics import MetricsInterceptor
from metaprod.services.streams import ProbingHealth, StreamLimitInterceptor, StreamSlots

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = limits.MAX_MESSAGE_BYTES


@dataclass
class ServiceContext:
    """What every servicer shares: the database, the authenticator, and a hook the agents
    subscribe to so that new work wakes them at once instead of at their next poll."""

    database: Database
    authenticator: Authenticator
    # fsspec URL of the outputs and checkpoints ("": unknown, e.g. a test's bare server).
    storage: str = ""
    on_new_work: list[Callable[[str], None]] = field(default_factory=list)
    # Called once the server has stopped taking calls (background writers flush and stop).
    on_close: list[Callable[[], None]] = field(default_factory=list)

    def notify(self, kind: str) -> None:
        for callback in self.on_new_work:
            try:
                callback(kind)
            except Exception:  # a listener must never fail an RPC
                log.exception("new-work listener failed")


@dataclass(frozen=True)
class ServiceBinding:
    servicer: Any
    add_to_server: Callable[[Any, grpc.Server], None]
    full_name: str


class MetaprodServer:
    def __init__(
        self,
        context: ServiceContext,
        bindings: Sequence[ServiceBinding],
        *,
        address: str = "127.0.0.1:50051",
        max_workers: int = 32,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self.context = context
        # Streams may take half of the workers; unary calls always find a thread.
        self.stream_slots = StreamSlots(total=max_workers // 2)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
            interceptors=[
                MetricsInterceptor(),
                EntryErrorInterceptor(),
                AuthInterceptor(context.authenticator),
                StreamLimitInterceptor(self.stream_slots),
                DomainErrorInterceptor(),
            ],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._health = ProbingHealth(context.database)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [binding.full_name for binding in bindings]
        for binding in bindings:
            binding.add_to_server(binding.servicer, self._server)
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server)
        if credentials is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, credentials)
        self.secure = credentials is not None
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")
        host = address.rsplit(":", 1)[0]
        self.address = f"{host}:{self.port}"
        self._names = names

    def start(self) -> None:
        self._server.start()
        for name in ["", *self._names]:
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("metaprod services listening on %s%s", self.address, " (TLS)" if self.secure else "")

    def stop(self, grace: float = 5.0) -> None:
        """Refuse new calls, let running ones finish within `grace` seconds."""
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        for close in self.context.on_close:
            close()

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._server.wait_for_termination(timeout))
