"""The gRPC channel: bearer token, deadlines, retries of idempotent reads, error mapping."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from metaprod.clients.errors import from_rpc_error, status_code
from metaprod.core import limits
from metaprod.core.errors import DomainError

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

DEFAULT_ADDRESS = "127.0.0.1:50051"
MAX_MESSAGE_BYTES = limits.MAX_MESSAGE_BYTES  # the server accepts as much (docs/spec.md, Limits)
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Keep long streams (watch, big imports) alive through idle NATs and load balancers.
    # The default server policy tolerates these: at most 2 pings without data in between.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 2),
)
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# A stream may also be refused for want of a free stream slot (its client has too many open).
STREAM_RETRYABLE = RETRYABLE | {grpc.StatusCode.RESOURCE_EXHAUSTED}
_READ_PREFIXES = ("Get", "List", "Find", "Watch", "Validate", "WhoAmI")


def is_idempotent(method: str) -> bool:
    """Reads (Get*/List*/Find*/Watch*/*Progress, Validate, WhoAmI) may be retried safely."""
    return method.startswith(_READ_PREFIXES) or method.endswith("Progress")


@dataclass(frozen=True, slots=True)
class CallPolicy:
    timeout: float | None = 30.0  # deadline of every unary call, seconds
    retries: int = 3  # extra attempts of an idempotent read on UNAVAILABLE/DEADLINE_EXCEEDED
    backoff: float = 0.2  # first retry delay, doubled each time, with jitter
    max_backoff: float = 5.0
    stream_timeout: float | None = None  # deadline of streaming calls (None: no deadline)

    def delay(self, failures: int) -> float:
        base = min(self.max_backoff, self.backoff * (2.0 ** max(0, failures - 1)))
        return base * (0.5 + random.random() / 2)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


class Transport:
    """One gRPC channel and the policy applied to every call made on it."""

    def __init__(
        self,
        address: str,
        token: str | None,
        *,
        policy: CallPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.address = address
        self.policy = policy or CallPolicy()
        merged = dict(CHANNEL_OPTIONS)
        merged.update(dict(options))
        opts = list(merged.items())
        if credentials is None:
            self._channel = grpc.insecure_channel(address, options=opts)
        else:
            self._channel = grpc.secure_channel(address, credentials, options=opts)
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def close(self) -> None:
        self._channel.close()

    def _error(self, exc: grpc.RpcError, timeout: float | None) -> DomainError:
        return from_rpc_error(exc, address=self.address, timeout=timeout)

    def _sleep_before_retry(self, failures: int) -> None:
        time.sleep(self.policy.delay(failures))

    def unary(
        self,
        service: str,
        method: str,
        request: Req,
        response_type: type[Resp],
        *,
        timeout: float | None = None,
    ) -> Resp:
        """One unary call with the deadline of the policy; idempotent reads are retried."""
        rpc: grpc.UnaryUnaryMultiCallable[Req, Resp] = self._channel.unary_unary(
            f"/{service}/{method}",
            request_serializer=_serialize,
            response_deserializer=response_type.FromString,
        )
        deadline = self.policy.timeout if timeout is None else timeout
        attempts = 1 + (max(0, self.policy.retries) if is_idempotent(method) else 0)
        failures = 0
        while True:
            try:
                return rpc(request, timeout=deadline, metadata=self._metadata)
            except grpc.RpcError as exc:
                failures += 1
                if failures >= attempts or status_code(exc) not in RETRYABLE:
                    raise self._error(exc, deadline) from exc
            self._sleep_before_retry(failures)

    def server_stream(
        self,
        service: str,
        method: str,
        request: Req,
        response_type: type[Resp],
        *,
        resume: bool = False,
    ) -> Iterator[Resp]:
        """Iterate a server stream. An idempotent stream is retried while nothing was received,
        or at any point when `resume` (a watch: each message stands on its own)."""
        rpc: grpc.UnaryStreamMultiCallable[Req, Resp] = self._channel.unary_stream(
            f"/{service}/{method}",
            request_serializer=_serialize,
            response_deserializer=response_type.FromString,
        )
        deadline = self.policy.stream_timeout
        retries = max(0, self.policy.retries) if is_idempotent(method) else 0
        failures = 0
        received = False
        while True:
            call = rpc(request, timeout=deadline, metadata=self._metadata)
            try:
                for item in call:
                    received = True
                    if resume:
                        failures = 0
                    yield item
                return
            except grpc.RpcError as exc:
                failures += 1
                may_retry = resume or not received
                if failures > retries or not may_retry or status_code(exc) not in STREAM_RETRYABLE:
                    raise self._error(exc, deadline) from exc
            finally:
                call.cancel()
            self._sleep_before_retry(failures)

    def client_stream(
        self,
        service: str,
        method: str,
        requests: Iterator[Req],
        response_type: type[Resp],
    ) -> Resp:
        """A client stream (never retried: the requests are consumed)."""
        rpc: grpc.StreamUnaryMultiCallable[Req, Resp] = self._channel.stream_unary(
            f"/{service}/{method}",
            request_serializer=_serialize,
            response_deserializer=response_type.FromString,
        )
        deadline = self.policy.stream_timeout
        try:
            return rpc(requests, timeout=deadline, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._error(exc, deadline) from exc
