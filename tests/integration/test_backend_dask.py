"""DaskBackend on a real distributed LocalCluster (two worker processes, one thread each)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from metaprod.agents.backends import BackendError, JobSpec, JobState, JobStatus, make_backend
from metaprod.agents.backends.base import JobBackend
from metaprod.agents.backends.dask import DaskBackend

from tests.processes import process_alive


@pytest.fixture(scope="module")
def backend() -> Iterator[DaskBackend]:
    b = make_backend("dask", {"workers": 2})
    assert isinstance(b, DaskBackend)
    try:
        yield b
    finally:
        b.close()


def spec(tmp_path: Path, key: str, script: str, env: dict[str, str] | None = None) -> JobSpec:
    workdir = tmp_path / key
    workdir.mkdir(exist_ok=True)
    return JobSpec(
        key=key, argv=("/bin/sh", "-c", script), env=env or {}, workdir=workdir, log_path=tmp_path / f"{key}.log"
    )


def wait_states(
    backend: JobBackend, ids: Sequence[str], want: set[JobState], timeout: float = 20.0
) -> dict[str, JobStatus]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = backend.status(ids)
        if all(s.state in want for s in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs not in {want} after {timeout}s: {statuses}")
        time.sleep(0.05)


FINAL = {JobState.SUCCEEDED, JobState.FAILED}


def test_success_env_cwd_and_log(backend: DaskBackend, tmp_path: Path) -> None:
    job = spec(tmp_path, "d1-a1", 'echo "$METAPROD_X"; pwd -P; echo err >&2', env={"METAPROD_X": "a b'c"})
    job.log_path.write_text("earlier\n")
    job_id = backend.submit(job)
    assert job_id.startswith("dask-d1-a1-")
    assert wait_states(backend, [job_id], FINAL)[job_id] == JobStatus(JobState.SUCCEEDED, 0)
    assert job.log_path.read_text().splitlines() == ["earlier", "a b'c", str(job.workdir.resolve()), "err"]
    # Final outcomes are remembered after the future is released.
    assert backend.status([job_id])[job_id].state is JobState.SUCCEEDED


def test_failures(backend: DaskBackend, tmp_path: Path) -> None:
    failing = backend.submit(spec(tmp_path, "d2-a1", "exit 7"))
    killed = backend.submit(spec(tmp_path, "d2-a2", "kill -TERM $$"))
    missing = JobSpec("d2-a3", (str(tmp_path / "nope"),), {}, tmp_path, tmp_path / "d2-a3.log")
    broken = backend.submit(missing)
    statuses = wait_states(backend, [failing, killed, broken], FINAL)
    assert statuses[failing] == JobStatus(JobState.FAILED, 7, "exit code 7")
    assert statuses[killed] == JobStatus(JobState.FAILED, -15, "killed by signal SIGTERM")
    assert statuses[broken].state is JobState.FAILED
    assert "FileNotFoundError" in statuses[broken].reason
    assert "failed to start" in missing.log_path.read_text()


def test_pending_running_and_cancel(backend: DaskBackend, tmp_path: Path) -> None:
    assert backend.capacity() == 2
    gate = tmp_path / "gate"
    script = f"echo $$ > pid; while [ ! -e {gate} ]; do sleep 0.05; done"
    jobs = [spec(tmp_path, f"d3-a{i}", script) for i in range(3)]
    ids = [backend.submit(j) for j in jobs]
    # Two workers with one thread each: two run, the third waits.
    deadline = time.monotonic() + 20
    while True:
        states = [s.state for s in backend.status(ids).values()]
        if states.count(JobState.RUNNING) == 2:
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.05)
    assert states.count(JobState.PENDING) == 1
    running = [i for i, s in backend.status(ids).items() if s.state is JobState.RUNNING]
    pending = next(i for i in ids if i not in running)
    pids = [int((j.workdir / "pid").read_text()) for j, i in zip(jobs, ids, strict=True) if i in running]

    backend.cancel([running[0], pending])
    assert backend.status([running[0], pending]) == {
        running[0]: JobStatus(JobState.FAILED, None, "cancelled"),
        pending: JobStatus(JobState.FAILED, None, "cancelled"),
    }
    # The cancelled job's subprocess is really gone; the other one is untouched.
    killed_pid = pids[running.index(running[0])]
    deadline = time.monotonic() + 10
    while process_alive(killed_pid):
        assert time.monotonic() < deadline, "cancelled job's process still alive"
        time.sleep(0.05)
    assert backend.status([running[1]])[running[1]].state is JobState.RUNNING
    gate.touch()
    assert wait_states(backend, [running[1]], FINAL)[running[1]].state is JobState.SUCCEEDED
    time.sleep(0.2)
    pending_job = jobs[ids.index(pending)]
    assert not (pending_job.workdir / "pid").exists(), "a cancelled pending job must never start"


def test_unknown_ids(backend: DaskBackend) -> None:
    statuses = backend.status(["dask-t1-a1-000000000000", "whatever"])
    assert {s.state for s in statuses.values()} == {JobState.UNKNOWN}
    backend.cancel(["whatever"])


def test_second_client_by_address(backend: DaskBackend, tmp_path: Path) -> None:
    scheduler = backend.client.scheduler
    assert scheduler is not None
    address = scheduler.address
    with make_backend("dask", {"address": address}) as other:
        job_id = other.submit(spec(tmp_path, "d4-a1", "true"))
        assert wait_states(other, [job_id], FINAL)[job_id].state is JobState.SUCCEEDED
        # Ids are per client: the first backend never saw this one.
        assert backend.status([job_id])[job_id].state is JobState.UNKNOWN
    # Closing the second client leaves the first one's cluster working.
    job_id = backend.submit(spec(tmp_path, "d4-a2", "true"))
    assert wait_states(backend, [job_id], FINAL)[job_id].state is JobState.SUCCEEDED


def test_bad_options_and_address() -> None:
    with pytest.raises(BackendError, match="unknown config key"):
        make_backend("dask", {"nworkers": 1})
    with pytest.raises(BackendError, match="cannot start/connect"):
        make_backend("dask", {"address": "tcp://127.0.0.1:9", "connect_timeout": 1})


def test_resources_option_type(backend: DaskBackend, tmp_path: Path) -> None:
    job = spec(tmp_path, "d5-a1", "true")
    bad = JobSpec(job.key, job.argv, job.env, job.workdir, job.log_path, options={"resources": "GPU=1"})
    with pytest.raises(BackendError, match="resources"):
        backend.submit(bad)


def test_close_of_owned_cluster_stops_its_jobs(tmp_path: Path) -> None:
    b = make_backend("dask", {"workers": 1})
    job = spec(tmp_path, "d6-a1", "echo $$ > pid; exec sleep 30")
    job_id = b.submit(job)
    wait_states(b, [job_id], {JobState.RUNNING})
    pid = int((job.workdir / "pid").read_text())
    started = time.monotonic()
    b.close()
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while process_alive(pid):
        assert time.monotonic() < deadline, "job of a closed private cluster still running"
        time.sleep(0.05)
    b.close()  # idempotent
