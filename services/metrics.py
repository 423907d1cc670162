"""Prometheus metrics of one process: the gRPC server's requests, errors and latency by method
and the agents' cycle durations (this process's), in one registry that /metrics serves beside
what it reads from the database (services.dashboard)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds: from sub-millisecond agent cycles and RPCs to long batches.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

AGENT_CYCLE_SECONDS = Histogram(
    "metaprod_agent_cycle_duration_seconds",
    "Duration of agent cycles run in this process",
    ["agent"],
    buckets=LATENCY_BUCKETS,
    registry=PROCESS_REGISTRY,
)
GRPC_REQUESTS = Counter(
    "metaprod_grpc_requests",
    "gRPC calls handled, by method and status code",
    ["method", "code"],
    registry=PROCESS_REGISTRY,
)
GRPC_LATENCY = Histogram(
    "metaprod_grpc_request_duration_seconds",
    "gRPC call latency by method",
    ["method"],
    buckets=LATENCY_BUCKETS,
    registry=PROCESS_REGISTRY,
)


def observe_call(method: str, seconds: float, code: str) -> None:
    short = method.rsplit("/", 2)
    name = "/".join(short[-2:]) if len(short) >= 2 else method
    GRPC_REQUESTS.labels(name, code).inc()
    GRPC_LATENCY.labels(name).observe(seconds)


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts every unary call (and times it) by method and status code."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(("/grpc.health.", "/grpc.reflection.")):
            return handler
        if handler.unary_unary:
            inner = handler.unary_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                start = time.perf_counter()
                try:
                    return inner(request, context)
                finally:
                    observe_call(method, time.perf_counter() - start, _code(context))

            return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                start = time.perf_counter()
                try:
                    yield from inner_stream(request, context)
                finally:
                    observe_call(method, time.perf_counter() - start, _code(context))

            return grpc.unary_stream_rpc_method_handler(
                stream, handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_unary:
            inner_upload = handler.stream_unary

            def upload(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
                start = time.perf_counter()
                try:
                    return inner_upload(requests, context)
                finally:
                    observe_call(method, time.perf_counter() - start, _code(context))

            return grpc.stream_unary_rpc_method_handler(
                upload, handler.request_deserializer, handler.response_serializer
            )
        return handler


def _code(context: grpc.ServicerContext) -> str:
    try:
        code = context.code()  # type: ignore[attr-defined]
    except Exception:
        code = None
    if code is None:
        return "OK"
    return str(getattr(code, "name", code))
