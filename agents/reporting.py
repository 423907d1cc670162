"""How a job talks to the services: heartbeats and reports over gRPC with the job's worker
token (one channel per services address for the life of the process), and a sender thread
that batches a job's reports so its next command need not wait for them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import grpc
from metaprod.core import joblog
from metaprod.v1 import transformation_pb2 as tpb
from metaprod.v1 import transformation_pb2_grpc as tpb_grpc

# Services may be restarting (crash recovery) or the claim not yet committed: keep trying.
RETRY_SECONDS = 300.0
# ABORTED: the database gave the call's transaction up for a concurrent one.
RETRIED_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
}
T = TypeVar("T")


# One channel per services address (and TLS) for the life of the process: a pooled worker runs
# many jobs, each with its own token (sent as call metadata), over one connection.
_CHANNELS: dict[tuple[str, tuple[tuple[str, str], ...]], grpc.Channel] = {}
_CHANNELS_LOCK = threading.Lock()


def channel_credentials(tls: Mapping[str, str]) -> grpc.ChannelCredentials:
    """TLS of the job file's "tls": the CA to trust (PEM text) and, when the services require
    client certificates, the paths of the certificate and key to present."""
    cert = key = None
    if tls.get("cert") and tls.get("key"):
        cert = Path(tls["cert"]).read_bytes()
        key = Path(tls["key"]).read_bytes()
    return grpc.ssl_channel_credentials(root_certificates=tls["ca"].encode(), private_key=key, certificate_chain=cert)


def _channel(address: str, tls: Mapping[str, str] | None = None) -> grpc.Channel:
    key = (address, tuple(sorted((tls or {}).items())))
    with _CHANNELS_LOCK:
        channel = _CHANNELS.get(key)
        if channel is None:
            channel = grpc.secure_channel(address, channel_credentials(tls)) if tls else grpc.insecure_channel(address)
            _CHANNELS[key] = channel
        return channel


class Reporter:
    def __init__(self, address: str, token: str, tls: Mapping[str, str] | None = None) -> None:
        self._stub = tpb_grpc.TransformationServiceStub(_channel(address, tls))  # type: ignore[no-untyped-call]
        self._metadata = (("authorization", f"Bearer {token}"),)

    def call(self, fn: Callable[..., T], request: Any, *, retry_for: float = RETRY_SECONDS) -> T:
        deadline = time.monotonic() + retry_for
        delay = 0.05
        while True:
            try:
                return fn(request, metadata=self._metadata, timeout=30)
            except grpc.RpcError as exc:
                if exc.code() not in RETRIED_CODES or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(5.0, delay * 2)

    def heartbeat(self, beats: list[tpb.HeartbeatRequest]) -> list[tpb.HeartbeatResponse]:
        """One beat for the given attempts; for each, whether it is still the live one (and
        whether it was withdrawn: see `start`)."""
        response: tpb.BundleHeartbeatResponse = self.call(
            self._stub.BundleHeartbeat, tpb.BundleHeartbeatRequest(attempts=beats), retry_for=0.0
        )
        return list(response.attempts)

    def lease(self, keys: list[tuple[int, int]]) -> tuple[list[tpb.HeartbeatResponse], float]:
        """Ask for a start lease for these attempts (not started yet): for each, whether it
        may start (or was superseded, or withdrawn: see `start`), and for how many seconds
        from when this call was made those answered proceed may start (0: none). Retried while
        the services restart; the time that takes counts against the lease."""
        request = tpb.BundleHeartbeatRequest(
            attempts=[tpb.HeartbeatRequest(task=t, attempt=a, queued=True) for t, a in keys], lease=True
        )
        response: tpb.BundleHeartbeatResponse = self.call(self._stub.BundleHeartbeat, request)
        return list(response.attempts), response.lease_seconds

    def start(self, task: int, attempt: int) -> tpb.HeartbeatResponse:
        """Ask to start an attempt's command: proceed, or not (superseded, killed), or
        withdrawn (its transformation was stopped: it went back to its task). Retried while
        the services restart: the attempt waits for their word."""
        response: tpb.HeartbeatResponse = self.call(
            self._stub.Heartbeat, tpb.HeartbeatRequest(task=task, attempt=attempt, queued=False)
        )
        return response

    def report(self, results: list[tpb.ReportTaskResultRequest]) -> list[tpb.ReportTaskResultResponse]:
        response: tpb.ReportBundleResultsResponse = self.call(
            self._stub.ReportBundleResults, tpb.ReportBundleResultsRequest(results=results)
        )
        return list(response.outcomes)

    def close(self) -> None:
        """The channel is shared by the process's reporters and stays open."""


class ReportSender:
    """Sends the bundle's reports from a thread of its own, so the next command starts at
    once: those waiting go in one call, at most LINGER_SECONDS after the oldest was handed
    over (sooner once BATCH are waiting or the job ends): a report per call would cost the
    services a call and a transaction per trivial task. :meth:`close` sends what is left and
    waits until all were sent."""

    LINGER_SECONDS = 0.1
    BATCH = 32

    def __init__(
        self,
        reporter: Reporter,
        say: Callable[[str], None],
        refused: Callable[[tpb.ReportTaskResultRequest], None] | None = None,
    ) -> None:
        self._reporter = reporter
        self._say = say
        # Called with each report that did not count (refused, or never delivered): what
        # its attempt stored is dropped.
        self._refused = refused
        self._pending: list[tpb.ReportTaskResultRequest] = []
        self._oldest = 0.0
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="metaprod-reports", daemon=True)
        self._thread.start()

    def put(self, request: tpb.ReportTaskResultRequest) -> None:
        with self._cond:
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.append(request)
            if len(self._pending) in (1, self.BATCH):  # start the linger, or end it early
                self._cond.notify()

    def close(self) -> None:
        """No more reports will come: send those waiting now, and wait until all were sent."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closing:
                    if len(self._pending) >= self.BATCH:
                        break
                    if self._pending:
                        left = self._oldest + self.LINGER_SECONDS - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    else:
                        self._cond.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
            sent = time.monotonic()
            try:
                outcomes = self._reporter.report(batch)
                lines = [
                    f"reported success={request.success} accepted={outcome.accepted} "
                    f"in {1000 * (time.monotonic() - sent):.0f} ms {request.error}"
                    for request, outcome in zip(batch, outcomes, strict=True)
                ]
                dropped = [request for request, outcome in zip(batch, outcomes, strict=True) if not outcome.accepted]
            except grpc.RpcError as exc:
                lines = [f"report failed: {exc.code().name}: {exc.details()}"] * len(batch)
                dropped = list(batch)
            if self._refused is not None:
                for request in dropped:
                    if request.outputs:
                        self._refused(request)
            for request, line in zip(batch, lines, strict=True):
                self._say(joblog.tagged(request.task, request.attempt, line))
