"""Fair service under load, on a real server and database: clients that open FindFiles
streams over a large result and stall hold no database connection and at most their share of
the server's threads, while other clients' calls keep succeeding promptly; many threads of
find + progress meet no pool error; the health check (`metaprod status`) tells the truth."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from metaprod.clients import connect
from metaprod.db.session import Database
from metaprod.services.app import build_server
from metaprod.services.streams import MAX_STREAMS_PER_CLIENT
from metaprod.v1 import catalog_pb2, catalog_pb2_grpc

from tests.integration.conftest import Connect, RunningServer

FILES = 20_000
STALLERS = 15
PROMPT = 5.0  # seconds: a call of the other clients answers within this while streams stall

SPEC = """
production: fair
fields: {run: int, datatype: str}
transformations:
  - name: sim
    tasks: 3
    command: "true"
    output_query: {datatype: sim}
"""


@pytest.fixture
def big(server: RunningServer, connect_as: Connect) -> RunningServer:
    admin = connect_as(None)
    admin.catalog.add_field("run", "int")
    admin.catalog.add_field("datatype", "str")
    files = (
        {"lfn": f"/fair/f{i:06d}", "size": i, "metadata": {"run": i % 10, "datatype": "raw"}} for i in range(FILES)
    )
    assert admin.catalog.register_files(files).registered == FILES  # type: ignore[arg-type]
    admin.productions.create(SPEC)
    return server


def stall(address: str, token: str, opened: list[grpc.Channel]) -> Iterator[catalog_pb2.FindFilesResponse]:
    """A FindFiles stream over every file that is never read (its own channel: its own client)."""
    channel = grpc.insecure_channel(address)
    opened.append(channel)
    stub = catalog_pb2_grpc.FileCatalogStub(channel)
    request = catalog_pb2.FindFilesRequest(query="datatype=raw", with_metadata=True)
    return stub.FindFiles(request, metadata=(("authorization", f"Bearer {token}"),))  # type: ignore[no-any-return]


def timed(call: object) -> float:
    started = time.perf_counter()
    assert callable(call)
    call()
    return time.perf_counter() - started


def health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return int(health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status)


def test_stalled_streams_leave_the_others_served(big: RunningServer, connect_as: Connect) -> None:
    """15 stalled streams of one client: MAX_STREAMS_PER_CLIENT of them are served (and
    hold no database connection), the rest are refused at once with RESOURCE_EXHAUSTED; the
    other clients' reads and token-checked calls answer promptly meanwhile."""
    stalling_token = big.token("staller", "reader")
    other = connect_as(big.token("other", "reader"))
    admin = connect_as(None)
    channels: list[grpc.Channel] = []
    streams = [stall(big.address, stalling_token, channels) for _ in range(STALLERS)]
    try:
        # Each stream has sent its first batch or been refused: decided by state, not by a sleep.
        refused = 0
        for s in streams:
            try:
                first = next(s)
                assert len(first.files) == 1000
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
                assert "streams open" in (exc.details() or "")
                refused += 1
        assert refused == STALLERS - MAX_STREAMS_PER_CLIENT
        assert big.server.stream_slots.open_streams() == MAX_STREAMS_PER_CLIENT
        # The stalled streams hold no database connection: once they block on their client
        # (a batch or two in flight), the pool is whole.
        pool = big.database.engine.pool
        deadline = time.monotonic() + 15
        while pool.checkedout() and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.05)
        assert pool.checkedout() == 0, pool.status()  # type: ignore[attr-defined]
        for _ in range(3):
            assert timed(lambda: list(other.catalog.find("run=3", limit=50))) < PROMPT
            assert timed(lambda: admin.productions.progress("fair")) < PROMPT
            assert timed(lambda: admin.productions.get("fair")) < PROMPT
            assert timed(lambda: other.admin.whoami()) < PROMPT
            assert timed(lambda: admin.catalog.get("/fair/f000007")) < PROMPT
        assert health(big.address) == health_pb2.HealthCheckResponse.SERVING
    finally:
        for s in streams:
            s.cancel()  # type: ignore[attr-defined]
        for channel in channels:
            channel.close()
    # Cancelled streams give their slots back.
    deadline = time.monotonic() + 10
    while big.server.stream_slots.open_streams() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert big.server.stream_slots.open_streams() == 0
    assert len(list(other.catalog.find("datatype=raw", with_metadata=False))) == FILES


def test_many_threads_of_find_and_progress_meet_no_pool_error(big: RunningServer) -> None:
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        client = connect(big.address, big.admin_token, timeout=30, retries=5)
        try:
            for j in range(3):
                found = list(client.catalog.find(f"run={(i + j) % 10}", limit=500))
                assert len(found) == 500
                assert client.productions.progress("fair").name == "fair"
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(work, range(20)))
    assert not errors, errors[:3]
    assert health(big.address) == health_pb2.HealthCheckResponse.SERVING


def test_status_says_not_serving_when_no_connection_can_be_had(database_url: str) -> None:
    """A server whose pool is exhausted: calls fail at once with a clear UNAVAILABLE (no 30 s
    hang, no unhandled error), and the health check says NOT_SERVING; both recover after."""
    from metaprod.db.migrate import upgrade
    from metaprod.db.tokens import create_token

    db = Database(database_url, pool_size=1, max_overflow=0, pool_timeout=0.5)
    upgrade(db)
    with db.session_scope() as session:
        _, secret = create_token(session=session, name="admin", role="admin")
    srv = build_server(db, address="127.0.0.1:0", max_workers=8)
    srv.start()
    client = connect(srv.address, secret, timeout=20, retries=0)
    try:
        assert client.admin.whoami().name == "admin"
        assert health(srv.address) == health_pb2.HealthCheckResponse.SERVING
        held = db.engine.connect()  # the only connection
        try:
            time.sleep(0.6)  # past the probe's memory of its last answer
            assert health(srv.address) == health_pb2.HealthCheckResponse.NOT_SERVING
            started = time.perf_counter()
            with pytest.raises(Exception) as err:
                client.productions.list()
            assert time.perf_counter() - started < 5
            assert "no free database connection" in str(err.value), err.value
            assert type(err.value).__name__ == "ServiceUnavailable"
            # `metaprod status` tells the truth: not serving (exit 1), and why.
            env = dict(os.environ, METAPROD_ADDRESS=srv.address, METAPROD_TOKEN=secret)
            status = subprocess.run(
                [sys.executable, "-m", "metaprod.clients.cli", "status"],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert status.returncode == 1, status
            assert "not serving" in status.stdout and "no free database connection" in status.stdout, status
        finally:
            held.close()
        time.sleep(0.6)
        assert health(srv.address) == health_pb2.HealthCheckResponse.SERVING
        assert client.productions.list() == []
    finally:
        client.close()
        srv.stop(grace=1.0)
        db.dispose()
