"""How a job reports: the sender batches the reports waiting into one call and sends what
is left on close; a failed call is said in the job's log; a call is retried while the
services are unavailable, not when they refuse."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest
from metaprod.agents.reporting import Reporter, ReportSender
from metaprod.v1 import transformation_pb2 as tpb


class FakeReporter:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.fail = fail
        self.gate = threading.Event()
        self.gate.set()

    def report(self, results: list[tpb.ReportTaskResultRequest]) -> list[tpb.ReportTaskResultResponse]:
        self.gate.wait(10)
        self.calls.append([r.task for r in results])
        if self.fail:
            raise Unavailable()
        return [tpb.ReportTaskResultResponse(accepted=True) for _ in results]


class Unavailable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "connection refused"


def request(task: int) -> tpb.ReportTaskResultRequest:
    return tpb.ReportTaskResultRequest(task=task, attempt=1, success=True)


def test_reports_waiting_go_in_one_call_and_close_sends_the_rest() -> None:
    fake = FakeReporter()
    said: list[str] = []
    sender = ReportSender(fake, said.append)  # type: ignore[arg-type]
    fake.gate.clear()  # the first call hangs: the next reports wait together
    sender.put(request(1))
    time.sleep(ReportSender.LINGER_SECONDS + 0.1)
    for task in (2, 3, 4):
        sender.put(request(task))
    fake.gate.set()
    sender.close()
    assert fake.calls == [[1], [2, 3, 4]]
    assert len(said) == 4 and all("reported success=True accepted=True" in line for line in said)


def test_a_full_batch_is_sent_without_waiting_for_the_linger() -> None:
    fake = FakeReporter()
    sender = ReportSender(fake, lambda line: None)  # type: ignore[arg-type]
    sender.LINGER_SECONDS = 30.0
    for task in range(ReportSender.BATCH):
        sender.put(request(task))
    deadline = time.monotonic() + 5
    while not fake.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.calls == [list(range(ReportSender.BATCH))]
    sender.close()


def test_a_failed_report_is_said_in_the_log() -> None:
    said: list[str] = []
    sender = ReportSender(FakeReporter(fail=True), said.append)  # type: ignore[arg-type]
    sender.put(request(7))
    sender.close()
    assert len(said) == 1 and "report failed: UNAVAILABLE: connection refused" in said[0]


class Flaky:
    def __init__(self, failures: int, code: grpc.StatusCode) -> None:
        self.failures = failures
        self.code = code
        self.calls = 0

    def __call__(self, request: Any, *, metadata: Any, timeout: float) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            error = Unavailable()
            error.code = lambda: self.code  # type: ignore[method-assign]
            raise error
        return "ok"


def test_a_call_is_retried_while_unavailable_but_not_when_refused() -> None:
    reporter = Reporter("127.0.0.1:1", "secret")
    flaky = Flaky(2, grpc.StatusCode.UNAVAILABLE)
    assert reporter.call(flaky, None) == "ok" and flaky.calls == 3
    refused = Flaky(1, grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(grpc.RpcError):
        reporter.call(refused, None)
    assert refused.calls == 1
    gone = Flaky(100, grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(grpc.RpcError):
        reporter.call(gone, None, retry_for=0.0)  # heartbeats are not retried
    assert gone.calls == 1
