"""Bearer-token authentication: one interceptor rejects anonymous calls; servicers ask for
the caller's Principal through `Authenticator.principal(context)`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from metaprod.core.auth import Principal
from metaprod.core.errors import Unauthenticated
from metaprod.db.session import Database
from metaprod.db.tokens import authenticate

# Health checks and reflection stay open so that probes and grpcurl-style tools work.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# A resolved token is trusted this long before the database is asked again; a revocation
# takes effect within this delay.
CACHE_SECONDS = 2.0


def bearer_secret(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, secret = text.partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                return secret.strip()
    return None


class Authenticator:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def resolve(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthenticated("missing bearer token (set METAPROD_TOKEN or pass --token)")
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(secret)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        with self._database.session_scope(readonly=True) as session:
            principal = authenticate(session=session, secret=secret)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[secret] = (now, principal)
        return principal

    def principal(self, context: grpc.ServicerContext) -> Principal:
        return self.resolve(bearer_secret(context.invocation_metadata()))  # type: ignore[arg-type]


class AuthInterceptor(grpc.ServerInterceptor):
    """Refuses a call without a valid token before any servicer code runs."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if method.startswith(OPEN_METHOD_PREFIXES):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        try:
            self._authenticator.resolve(bearer_secret(handler_call_details.invocation_metadata))  # type: ignore[attr-defined]
        except Unauthenticated as exc:
            return _refusal(handler, str(exc))
        return handler


def _refusal(handler: grpc.RpcMethodHandler[Any, Any], message: str) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape as the real one that aborts before reading anything."""

    def refuse(request: object, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    def refuse_stream(request: object, context: grpc.ServicerContext) -> Iterator[object]:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield from ()

    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, des, ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, des, ser)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(refuse_stream, des, ser)
    return grpc.unary_unary_rpc_method_handler(refuse, des, ser)
