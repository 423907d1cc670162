"""Bearer-token authentication: one interceptor rejects anonymous calls; servicers ask for
the caller's Principal through `Authenticator.principal(context)`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
from metaprod.core.auth import Principal, hash_secret
from metaprod.core.errors import Unauthenticated
from metaprod.db.session import Database
from metaprod.db.tokens import authenticate_digest

# Health checks and reflection stay open so that probes and grpcurl-style tools work.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# A resolved token is trusted this long before the database is asked again (never past its
# expiry). A revocation made through this process empties every cache of the process at once;
# one made elsewhere (another server on the same database) takes effect within this delay, as
# does the end of a worker token's last attempt.
CACHE_SECONDS = 5.0
CACHE_MAX = 10_000
# Connections of the authenticator's own small pool: a cache miss never waits for the pool
# that RPCs and streams share, so a busy server still tells who is calling.
AUTH_POOL_SIZE = 2

_generation_lock = threading.Lock()
_generation = 0


def forget_tokens() -> None:
    """Every Authenticator of this process drops what it cached (a token was revoked)."""
    global _generation
    with _generation_lock:
        _generation += 1


def bearer_secret(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, secret = text.partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                return secret.strip()
    return None


def _lookup_database(database: Database) -> Database:
    """A small engine of its own on the same database; an in-memory SQLite one has no other."""
    if database.is_sqlite and database.url.database in (None, "", ":memory:"):
        return database
    return Database(database.url.render_as_string(hide_password=False), pool_size=AUTH_POOL_SIZE)


class Authenticator:
    """Bearer secret -> Principal, cached by the secret's digest for CACHE_SECONDS."""

    def __init__(self, database: Database) -> None:
        self._database = _lookup_database(database)
        self._owns_database = self._database is not database
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._generation = _generation
        self._lock = threading.Lock()

    def resolve(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthenticated("missing bearer token (set METAPROD_TOKEN or pass --token)")
        digest = hash_secret(secret)
        now = time.monotonic()
        with self._lock:
            if self._generation != _generation:
                self._cache.clear()
                self._generation = _generation
            generation = self._generation
            hit = self._cache.get(digest)
        if hit is not None and now < hit[0]:
            principal = hit[1]
            if principal.expires_at is None or principal.expires_at > datetime.now(UTC):
                return principal
        with self._database.session_scope(readonly=True) as session:
            principal = authenticate_digest(session=session, digest=digest)
        until = now + CACHE_SECONDS
        if principal.expires_at is not None:
            until = min(until, now + (principal.expires_at - datetime.now(UTC)).total_seconds())
        with self._lock:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            # A revocation during the lookup may have been read too late: keep nothing then.
            if generation == _generation:
                self._cache[digest] = (until, principal)
        return principal

    def close(self) -> None:
        if self._owns_database:
            self._database.dispose()

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
