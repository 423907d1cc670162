"""Fair service under load: a bound on concurrent server-streaming calls, and a health check
that says NOT_SERVING when the database cannot be reached in time.

A server-streaming call keeps a worker thread of the server while its client reads (a client
that stalls keeps it until its deadline). Streams hold no database connection between
batches (services/catalog.py), but their threads are finite: each client (its bearer token,
else its host) may have MAX_STREAMS_PER_CLIENT open, and all clients together half of the
server's workers, so unary calls always find a thread. A stream past either bound is refused
at once with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2
from metaprod.core.errors import ResourceExhausted
from metaprod.db.session import Database

log = logging.getLogger(__name__)

MAX_STREAMS_PER_CLIENT = 4


class StreamSlots:
    """Counts the open streams per client and in all."""

    def __init__(self, total: int, per_client: int = MAX_STREAMS_PER_CLIENT) -> None:
        self.total = max(1, total)
        self.per_client = max(1, min(per_client, self.total))
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, client: str) -> None:
        with self._lock:
            mine = self._open.get(client, 0)
            if mine >= self.per_client:
                raise ResourceExhausted(
                    f"this client already has {mine} streams open (at most {self.per_client} per client): "
                    "read or cancel one first"
                )
            if sum(self._open.values()) >= self.total:
                raise ResourceExhausted(
                    f"the server has {self.total} streams open, its limit: retry once some are done"
                )
            self._open[client] = mine + 1

    def release(self, client: str) -> None:
        with self._lock:
            left = self._open.get(client, 0) - 1
            if left > 0:
                self._open[client] = left
            else:
                self._open.pop(client, None)

    def open_streams(self) -> int:
        with self._lock:
            return sum(self._open.values())


def client_key(context: grpc.ServicerContext) -> str:
    """The caller's bearer token (hashed), else its host (the peer without its port)."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and value:
            text = value if isinstance(value, str) else value.decode("utf-8", "replace")
            return "token:" + hashlib.sha256(text.encode()).hexdigest()[:16]
    peer = context.peer() or ""
    return "peer:" + peer.rsplit(":", 1)[0]


class StreamLimitInterceptor(grpc.ServerInterceptor):
    """Applies `StreamSlots` to every server-streaming method (released when the call ends,
    whether it completed, failed or was cancelled)."""

    def __init__(self, slots: StreamSlots) -> None:
        self.slots = slots

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None or not handler.unary_stream:
            return handler
        behaviour = handler.unary_stream
        slots = self.slots

        def limited(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            client = client_key(context)
            try:
                slots.acquire(client)
            except ResourceExhausted as exc:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, exc.message)
            released = threading.Event()

            def release() -> None:
                if not released.is_set():
                    released.set()
                    slots.release(client)

            context.add_callback(release)
            try:
                yield from behaviour(request, context)
            finally:
                release()

        return grpc.unary_stream_rpc_method_handler(limited, handler.request_deserializer, handler.response_serializer)


class ProbingHealth(health.HealthServicer):  # type: ignore[misc]
    """gRPC health whose answer is true: SERVING only while a database connection answers
    within PROBE_TIMEOUT_SECONDS (the reason of a NOT_SERVING is logged and sent as details)."""

    def __init__(self, database: Database) -> None:
        super().__init__()
        self.database = database

    def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext) -> Any:
        response = super().Check(request, context)
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            return response
        reason = self.database.probe()
        if reason is None:
            return response
        log.warning("health check: not serving: %s", reason)
        context.set_trailing_metadata((("metaprod-reason", reason[:500]),))
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING)
