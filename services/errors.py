"""The one table from domain errors to gRPC status codes, applied by one interceptor."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from metaprod.core import errors
from metaprod.core.limits import clip
from metaprod.db.migrate import SchemaNotAtHead

log = logging.getLogger(__name__)

STATUS_OF: dict[type[Exception], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.Conflict: grpc.StatusCode.ABORTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    SchemaNotAtHead: grpc.StatusCode.FAILED_PRECONDITION,
}


def status_for(exc: BaseException) -> grpc.StatusCode | None:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return None


def _abort(context: grpc.ServicerContext, exc: Exception, method: str) -> None:
    code = status_for(exc)
    # Messages are clipped: an error never echoes a huge value back (gRPC carries the message
    # in a trailer, whose size is limited).
    if code is None:
        log.exception("internal error in %s", method)
        context.abort(grpc.StatusCode.INTERNAL, clip(f"internal error: {type(exc).__name__}: {exc}"))
    else:
        context.abort(code, clip(str(exc)))


class _Malformed:
    """What a request that is not a valid message of its type deserializes to (see below)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that gives `_Malformed` instead of raising: gRPC itself would answer a
    corrupt request with INTERNAL ("Exception deserializing request!"); it is bad input."""
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:
            return _Malformed(str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)

    return deserialize


def _checked(request: Any) -> Any:
    if isinstance(request, _Malformed):
        raise errors.InvalidArgument(f"malformed request: {request.reason}")
    return request


def _checked_stream(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        yield _checked(request)


def _wrap_unary(behaviour: Callable[..., Any], method: str, streaming_request: bool = False) -> Callable[..., Any]:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            request = _checked_stream(request) if streaming_request else _checked(request)
            return behaviour(request, context)
        except Exception as exc:
            if isinstance(exc, grpc.RpcError) or _already_aborted(context):
                raise
            _abort(context, exc, method)

    return handler


def _wrap_streaming(
    behaviour: Callable[..., Iterator[Any]], method: str, streaming_request: bool = False
) -> Callable[..., Iterator[Any]]:
    def handler(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            request = _checked_stream(request) if streaming_request else _checked(request)
            yield from behaviour(request, context)
        except Exception as exc:
            if isinstance(exc, grpc.RpcError) or _already_aborted(context):
                raise
            _abort(context, exc, method)

    return handler


def _already_aborted(context: grpc.ServicerContext) -> bool:
    # context.abort raises a bare Exception after setting the code; let it through untouched.
    return context.code() is not None  # type: ignore[attr-defined,no-any-return]


class DomainErrorInterceptor(grpc.ServerInterceptor):
    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method  # type: ignore[attr-defined]
        deserializer = _lenient(handler.request_deserializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method),
                deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method, streaming_request=True),
                deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_streaming(handler.unary_stream, method),
                deserializer,
                handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_streaming(handler.stream_stream, method, streaming_request=True),
                deserializer,
                handler.response_serializer,
            )
        return handler


class EntryErrorInterceptor(grpc.ServerInterceptor):
    """Maps an error raised while a call is being routed (the token lookup of the auth
    interceptor when the database cannot be reached in time, say) through the same table,
    so it reaches the client as its own status (UNAVAILABLE...) rather than as an unhandled
    exception. Placed before the interceptors that may raise."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        try:
            return continuation(handler_call_details)
        except Exception as exc:
            method: str = handler_call_details.method  # type: ignore[attr-defined]
            code = status_for(exc)
            if code is None:
                log.exception("internal error routing %s", method)
                code, message = grpc.StatusCode.INTERNAL, clip(f"internal error: {type(exc).__name__}: {exc}")
            else:
                message = clip(str(exc))
            return _aborting(method, code, message)


def _aborting(method: str, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the method's shape (from its descriptor) that ends the call at once."""
    client_streaming = server_streaming = False
    try:
        found = descriptor_pool.Default().FindMethodByName(method.lstrip("/").replace("/", "."))
        client_streaming, server_streaming = found.client_streaming, found.server_streaming
    except KeyError:
        pass

    def abort(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    def abort_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        context.abort(code, message)
        yield from ()

    if client_streaming and server_streaming:
        return grpc.stream_stream_rpc_method_handler(abort_stream)
    if client_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if server_streaming:
        return grpc.unary_stream_rpc_method_handler(abort_stream)
    return grpc.unary_unary_rpc_method_handler(abort)
