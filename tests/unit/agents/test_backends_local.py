"""LocalBackend with real subprocesses."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from metaprod.agents.backends import BackendError, JobSpec, JobState, JobStatus, make_backend
from metaprod.agents.backends.base import JobBackend
from metaprod.agents.backends.local import LocalBackend

from tests.processes import process_alive


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    b = LocalBackend(max_workers=2, kill_grace=1.0, terminate_on_close=True, poll_interval=0.02)
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


def wait_final(backend: JobBackend, ids: Sequence[str], timeout: float = 15.0) -> dict[str, JobStatus]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = backend.status(ids)
        if all(s.state.is_final for s in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs not finished after {timeout}s: {statuses}")
        time.sleep(0.02)


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_success_captures_stdout_and_stderr_appending(backend: LocalBackend, tmp_path: Path) -> None:
    job = spec(tmp_path, "t1-a1", "echo to-stdout; echo to-stderr >&2")
    job.log_path.write_text("previous attempt\n")
    job_id = backend.submit(job)
    assert job_id.startswith(f"local-{os.getpid()}-")
    assert wait_final(backend, [job_id])[job_id] == JobStatus(JobState.SUCCEEDED, 0)
    assert job.log_path.read_text().splitlines() == ["previous attempt", "to-stdout", "to-stderr"]


def test_failure_exit_code_and_signal(backend: LocalBackend, tmp_path: Path) -> None:
    failing = backend.submit(spec(tmp_path, "t1-a2", "exit 3"))
    killed = backend.submit(spec(tmp_path, "t1-a3", "kill -KILL $$"))
    statuses = wait_final(backend, [failing, killed])
    assert statuses[failing] == JobStatus(JobState.FAILED, 3, "exit code 3")
    assert statuses[killed] == JobStatus(JobState.FAILED, -9, "killed by signal SIGKILL")


def test_env_merged_over_environ_and_cwd(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METAPROD_TEST_INHERITED", "from-parent")
    monkeypatch.setenv("METAPROD_TEST_OVERRIDDEN", "parent-value")
    job = spec(
        tmp_path,
        "t2-a1",
        'echo "$METAPROD_TEST_INHERITED|$METAPROD_TEST_OVERRIDDEN|$METAPROD_TEST_EXTRA"; pwd -P',
        env={"METAPROD_TEST_OVERRIDDEN": "job value", "METAPROD_TEST_EXTRA": "x'y\"z"},
    )
    job_id = backend.submit(job)
    assert wait_final(backend, [job_id])[job_id].state is JobState.SUCCEEDED
    assert job.log_path.read_text().splitlines() == [
        "from-parent|job value|x'y\"z",
        str(job.workdir.resolve()),
    ]


def test_queueing_beyond_max_workers(backend: LocalBackend, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    script = f"touch started; while [ ! -e {gate} ]; do sleep 0.02; done"
    jobs = [spec(tmp_path, f"t3-a{i}", script) for i in range(5)]
    ids = [backend.submit(j) for j in jobs]
    assert backend.capacity() == 2
    # Slots are filled by the backend's own thread, without anybody polling status().
    wait_for(lambda: sum((j.workdir / "started").exists() for j in jobs) == 2)
    time.sleep(0.2)  # nothing else may start while both slots are taken
    assert sum((j.workdir / "started").exists() for j in jobs) == 2
    states = [s.state for s in backend.status(ids).values()]
    assert states.count(JobState.RUNNING) == 2
    assert states.count(JobState.PENDING) == 3
    gate.touch()
    statuses = wait_final(backend, ids)
    assert all(s.state is JobState.SUCCEEDED for s in statuses.values())
    assert all((j.workdir / "started").exists() for j in jobs)


# A grace long enough that a graceful cancel (SIGTERM obeyed) and a forced one (SIGKILL after
# the grace) cannot be mistaken for each other by their duration.
LONG_GRACE = 10.0


def test_cancel_running_kills_process_group(tmp_path: Path) -> None:
    with LocalBackend(max_workers=1, kill_grace=LONG_GRACE, terminate_on_close=True, poll_interval=0.02) as backend:
        job = spec(tmp_path, "t4-a1", "sleep 30 & echo $! > child.pid; wait")
        job_id = backend.submit(job)
        pid_file = job.workdir / "child.pid"
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
        child = int(pid_file.read_text())
        started = time.monotonic()
        backend.cancel([job_id])
        status = wait_final(backend, [job_id])[job_id]
        # Ended by the SIGTERM, well within the grace: not by the SIGKILL that follows it.
        assert time.monotonic() - started < LONG_GRACE / 2
        assert status == JobStatus(JobState.FAILED, -15, "cancelled (killed by signal SIGTERM)")
    # The grandchild went with the group (it may linger as a zombie of whoever adopted it).
    wait_for(lambda: not process_alive(child), timeout=5)


def test_cancel_escalates_to_sigkill(tmp_path: Path) -> None:
    with LocalBackend(max_workers=1, kill_grace=0.3, terminate_on_close=True, poll_interval=0.02) as b:
        job = spec(tmp_path, "t5-a1", "trap '' TERM; touch ready; while :; do sleep 0.05; done")
        job_id = b.submit(job)
        wait_for(lambda: (job.workdir / "ready").exists())
        started = time.monotonic()
        b.cancel([job_id])
        status = wait_final(b, [job_id])[job_id]
        assert status == JobStatus(JobState.FAILED, -9, "cancelled (killed by signal SIGKILL)")
        assert time.monotonic() - started >= 0.3  # the grace was given first


def test_cancel_pending_never_starts(tmp_path: Path) -> None:
    with LocalBackend(max_workers=1, terminate_on_close=True, kill_grace=1.0, poll_interval=0.02) as b:
        blocker = b.submit(spec(tmp_path, "t6-a1", "sleep 30"))
        queued_job = spec(tmp_path, "t6-a2", "touch ran")
        queued = b.submit(queued_job)
        assert b.status([queued])[queued].state is JobState.PENDING
        b.cancel([queued, "local-0-nonexistent"])
        assert b.status([queued])[queued] == JobStatus(JobState.FAILED, None, "cancelled before start")
        b.cancel([blocker])
        wait_final(b, [blocker])
        time.sleep(0.1)
        assert not (queued_job.workdir / "ran").exists()


def test_unknown_ids(backend: LocalBackend, tmp_path: Path) -> None:
    with LocalBackend(max_workers=1, terminate_on_close=True) as previous:
        old_id = previous.submit(spec(tmp_path, "t7-a1", "true"))
        wait_final(previous, [old_id])
    # A fresh backend (as after a restart) knows nothing of the old one's ids.
    statuses = backend.status([old_id, "local-1-deadbeef", "garbage"])
    assert {s.state for s in statuses.values()} == {JobState.UNKNOWN}
    backend.cancel([old_id, "garbage"])  # ignored, no error


def test_start_failure_is_reported(backend: LocalBackend, tmp_path: Path) -> None:
    job = JobSpec(
        key="t8-a1",
        argv=(str(tmp_path / "no-such-program"),),
        env={},
        workdir=tmp_path,
        log_path=tmp_path / "t8.log",
    )
    job_id = backend.submit(job)
    status = wait_final(backend, [job_id])[job_id]
    assert status.state is JobState.FAILED
    assert status.reason.startswith("failed to start")
    assert "failed to start" in job.log_path.read_text()


def test_submit_validation(backend: LocalBackend, tmp_path: Path) -> None:
    good = spec(tmp_path, "t9-a1", "true")
    with pytest.raises(BackendError, match="argv is empty"):
        backend.submit(JobSpec("t9-a2", (), {}, good.workdir, good.log_path))
    with pytest.raises(BackendError, match="not a directory"):
        backend.submit(JobSpec("t9-a3", ("true",), {}, tmp_path / "missing", good.log_path))
    with pytest.raises(BackendError, match="log directory"):
        backend.submit(JobSpec("t9-a4", ("true",), {}, good.workdir, tmp_path / "missing" / "x.log"))
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.submit(good)


def test_close_without_terminate_leaves_jobs_running(tmp_path: Path) -> None:
    b = LocalBackend(max_workers=1, kill_grace=1.0)
    job = spec(tmp_path, "t10-a1", "echo $$ > pid; sleep 30")
    job_id = b.submit(job)
    queued = b.submit(spec(tmp_path, "t10-a2", "true"))
    wait_for(lambda: (job.workdir / "pid").exists() and (job.workdir / "pid").read_text().strip() != "")
    b.close()
    pid = int((job.workdir / "pid").read_text())
    assert process_alive(pid)
    assert b.status([job_id])[job_id].state is JobState.RUNNING
    assert b.status([queued])[queued].reason == "backend closed before start"
    b.close(terminate=True)
    assert b.status([job_id])[job_id].state is JobState.FAILED
    assert not process_alive(pid)


def test_concurrent_submits(backend: LocalBackend, tmp_path: Path) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def submit_some(n: int) -> None:
        for i in range(5):
            job_id = backend.submit(spec(tmp_path, f"t11-w{n}-a{i}", "exit 0"))
            with lock:
                ids.append(job_id)

    threads = [threading.Thread(target=submit_some, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 20
    assert all(s.state is JobState.SUCCEEDED for s in wait_final(backend, ids).values())


def test_make_backend_registry() -> None:
    with make_backend("local", {"max_workers": 3}) as b:
        assert isinstance(b, LocalBackend)
        assert b.capacity() == 3
    with pytest.raises(BackendError, match="unknown config key"):
        make_backend("local", {"max_wrokers": 3})
    with pytest.raises(BackendError, match="'max_workers' must be int"):
        make_backend("local", {"max_workers": "3"})
    with pytest.raises(BackendError, match="unknown job backend"):
        make_backend("condor", {})


# --- pool mode: persistent Python workers run the jobs' python_entry -----------------------------

ENTRIES = str(Path(__file__).resolve().parent)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalBackend]:
    # Workers are started on demand with this environment: they can import pool_entries.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [ENTRIES, os.environ.get("PYTHONPATH")])))
    b = LocalBackend(max_workers=2, kill_grace=1.0, terminate_on_close=True, poll_interval=0.02)
    try:
        yield b
    finally:
        b.close()


def pooled(tmp_path: Path, key: str, entry: str, *args: str, env: dict[str, str] | None = None) -> JobSpec:
    job = spec(tmp_path, key, "echo argv-was-run", env)
    return JobSpec(job.key, job.argv, job.env, job.workdir, job.log_path, python_entry=(f"pool_entries:{entry}", args))


def test_pool_success_log_env_cwd_and_worker_reuse(pool: LocalBackend, tmp_path: Path) -> None:
    script = 'echo "out $METAPROD_TEST_EXTRA"; echo err >&2; pwd -P'
    first = pooled(tmp_path, "p1-a1", "run_command", script, env={"METAPROD_TEST_EXTRA": "x y"})
    first.log_path.write_text("previous attempt\n")
    first_id = pool.submit(first)
    assert wait_final(pool, [first_id])[first_id] == JobStatus(JobState.SUCCEEDED, 0)
    lines = first.log_path.read_text().splitlines()
    assert lines[0] == "previous attempt"
    assert lines[1].startswith("entry in worker ")
    assert lines[2:] == ["out x y", "err", str(first.workdir.resolve())]
    # The next job runs in the same worker (no interpreter start), with its own environment.
    second = pooled(tmp_path, "p1-a2", "run_command", 'echo "[$METAPROD_TEST_EXTRA]"')
    second_id = pool.submit(second)
    assert wait_final(pool, [second_id])[second_id].state is JobState.SUCCEEDED
    second_lines = second.log_path.read_text().splitlines()
    assert second_lines == [lines[1], "[]"]


def test_pool_failures(pool: LocalBackend, tmp_path: Path) -> None:
    failing = pooled(tmp_path, "p2-a1", "run_command", "exit 3")
    raising = pooled(tmp_path, "p2-a2", "boom")
    ids = [pool.submit(failing), pool.submit(raising)]
    statuses = wait_final(pool, ids)
    assert statuses[ids[0]] == JobStatus(JobState.FAILED, 3, "exit code 3")
    assert statuses[ids[1]] == JobStatus(JobState.FAILED, 1, "RuntimeError: boom from the entry")
    assert "RuntimeError: boom from the entry" in raising.log_path.read_text()  # the traceback


def test_pool_worker_death_fails_only_its_job(pool: LocalBackend, tmp_path: Path) -> None:
    dead = pool.submit(pooled(tmp_path, "p3-a1", "die"))
    status = wait_final(pool, [dead])[dead]
    assert status.state is JobState.FAILED
    assert status.reason.startswith("pool worker exited")
    after = pool.submit(pooled(tmp_path, "p3-a2", "run_command", "true"))
    assert wait_final(pool, [after])[after].state is JobState.SUCCEEDED


def worker_pids(backend: LocalBackend) -> list[int]:
    return sorted(w.proc.pid for w in backend._workers)


def test_pool_cancel_kills_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTHONPATH", ENTRIES)
    with LocalBackend(max_workers=1, kill_grace=LONG_GRACE, terminate_on_close=True, poll_interval=0.02) as pool:
        job = pooled(tmp_path, "p4-a1", "run_command", "sleep 30 & echo $! > child.pid; wait")
        job_id = pool.submit(job)
        pid_file = job.workdir / "child.pid"
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
        child = int(pid_file.read_text())
        worker = worker_pids(pool)
        started = time.monotonic()
        pool.cancel([job_id])
        status = wait_final(pool, [job_id])[job_id]
        # The command obeyed the SIGTERM, well within the grace; its worker was not killed.
        assert time.monotonic() - started < LONG_GRACE / 2
        assert status == JobStatus(JobState.FAILED, 143, "cancelled (exit code 143)")  # 128 + SIGTERM
        wait_for(lambda: not process_alive(child), timeout=5)
        # The worker survived the cancel and takes the next job.
        after = pool.submit(pooled(tmp_path, "p4-a2", "run_command", "true"))
        assert wait_final(pool, [after])[after].state is JobState.SUCCEEDED
        assert worker_pids(pool) == worker


def test_pool_cancel_escalates_to_killing_the_worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTHONPATH", ENTRIES)
    with LocalBackend(max_workers=1, kill_grace=0.3, terminate_on_close=True, poll_interval=0.02) as b:
        job = pooled(tmp_path, "p5-a1", "run_command", "trap '' TERM; touch ready; while :; do sleep 0.05; done")
        job_id = b.submit(job)
        wait_for(lambda: (job.workdir / "ready").exists())
        (worker,) = worker_pids(b)
        started = time.monotonic()
        b.cancel([job_id])
        status = wait_final(b, [job_id])[job_id]
        assert status.state is JobState.FAILED
        assert status.reason.startswith("cancelled")
        assert time.monotonic() - started >= 0.3  # the grace was given first
        assert not process_alive(worker)  # then the worker went, its command with it


def test_subprocess_mode_runs_argv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with make_backend("local", {"mode": "subprocess", "max_workers": 1}) as b:
        job = pooled(tmp_path, "p6-a1", "run_command", "echo entry-was-run")
        job_id = b.submit(job)
        assert wait_final(b, [job_id])[job_id].state is JobState.SUCCEEDED
        assert job.log_path.read_text() == "argv-was-run\n"
    with pytest.raises(BackendError, match="mode must be one of"):
        make_backend("local", {"mode": "threads"})


def test_warm_pool_starts_its_workers_with_their_imports_done(pool: LocalBackend, tmp_path: Path) -> None:
    pool.warm(["json", "pool_entries", "colorsys"])
    workers = {w.proc.pid for w in pool._workers}
    assert len(workers) == 2  # max_workers, before any job
    job = pooled(tmp_path, "p9-a1", "loaded_modules", "colorsys,wave")
    job_id = pool.submit(job)
    assert wait_final(pool, [job_id])[job_id].state is JobState.SUCCEEDED
    first, imported = job.log_path.read_text().splitlines()
    assert int(first.rsplit(" ", 1)[1]) in workers  # a warm worker ran it
    assert imported == "colorsys"  # preloaded; "wave" was not asked for
    pool.warm(["json"])  # idempotent: the pool is full
    assert {w.proc.pid for w in pool._workers} == workers
