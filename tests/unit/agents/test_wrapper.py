"""The job wrapper's own parts: each attempt's work directory; its commands start under start
leases (one call per lease, not per attempt), never once withdrawn."""

from __future__ import annotations

import os
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from metaprod.agents.reporting import ReportSender
from metaprod.agents.wrapper import WorkDirectories, _Bundle
from metaprod.core import joblog
from metaprod.v1 import transformation_pb2 as tpb


def ended_group() -> int:
    """The process-group id of a command that has ended and been reaped."""
    proc = subprocess.run(["/bin/sh", "-c", "echo $$"], capture_output=True, text=True, start_new_session=True)
    return int(proc.stdout)


def test_an_empty_abandoned_directory_is_renamed_for_the_next_attempt(tmp_path: Path) -> None:
    dirs = WorkDirectories()
    first, second, third = (tmp_path / f"t{i}-a1" for i in (1, 2, 3))
    dirs.take(first)
    inode = first.stat().st_ino
    dirs.vacate(first, ended_group())
    dirs.take(second)
    assert not first.exists() and second.stat().st_ino == inode  # the same directory, renamed
    assert list(second.iterdir()) == []
    (second / "output").write_text("kept")
    dirs.vacate(second, ended_group())
    dirs.take(third)
    assert (second / "output").read_text() == "kept"  # not empty: left as it is
    assert third.is_dir() and third.stat().st_ino != inode and list(third.iterdir()) == []


def test_a_directory_is_not_reused_while_a_process_of_its_command_lives(tmp_path: Path) -> None:
    dirs = WorkDirectories()
    first, second = tmp_path / "t1-a1", tmp_path / "t2-a1"
    dirs.take(first)
    lingering = subprocess.Popen(["sleep", "30"], cwd=first, start_new_session=True)
    try:
        dirs.vacate(first, lingering.pid)
        dirs.take(second)
        assert first.is_dir() and second.is_dir()
        assert first.stat().st_ino != second.stat().st_ino
    finally:
        lingering.kill()
        lingering.wait()


@pytest.mark.parametrize("change", ["chmod", "symlink"])
def test_a_changed_directory_is_not_reused(tmp_path: Path, change: str) -> None:
    dirs = WorkDirectories()
    first, second = tmp_path / "t1-a1", tmp_path / "t2-a1"
    dirs.take(first)
    if change == "chmod":
        first.chmod(0o500)
    else:
        first.rmdir()
        (tmp_path / "elsewhere").mkdir()
        first.symlink_to(tmp_path / "elsewhere")
    dirs.vacate(first, ended_group())
    dirs.take(second)
    assert os.path.lexists(first)  # left as it was
    assert second.is_dir() and not second.is_symlink() and list(second.iterdir()) == []
    assert second.stat().st_mode & 0o777 != 0o500


class FakeServices:
    """What the wrapper asks the services, and their answers: leases of `lease_seconds`
    (withdrawn ones when `withdraw`), arriving after `delay`; starts; reports."""

    def __init__(self, lease_seconds: float = 0.25, *, withdraw: bool = False, delay: float = 0.0) -> None:
        self.lease_seconds, self.withdraw, self.delay = lease_seconds, withdraw, delay
        self.leases: list[list[tuple[int, int]]] = []
        self.starts: list[tuple[int, int]] = []
        self.reported: list[int] = []

    def lease(self, keys: list[tuple[int, int]]) -> tuple[list[tpb.HeartbeatResponse], float]:
        time.sleep(self.delay)
        self.leases.append(keys)
        if self.withdraw:
            return [tpb.HeartbeatResponse(proceed=False, withdrawn=True) for _ in keys], 0.0
        return [tpb.HeartbeatResponse(proceed=True) for _ in keys], self.lease_seconds

    def start(self, task: int, attempt: int) -> tpb.HeartbeatResponse:
        self.starts.append((task, attempt))
        return tpb.HeartbeatResponse(proceed=True)

    def heartbeat(self, beats: list[tpb.HeartbeatRequest]) -> list[tpb.HeartbeatResponse]:
        return [tpb.HeartbeatResponse(proceed=True) for _ in beats]

    def report(self, results: list[tpb.ReportTaskResultRequest]) -> list[tpb.ReportTaskResultResponse]:
        self.reported.extend(r.task for r in results)
        return [tpb.ReportTaskResultResponse(accepted=True) for _ in results]


def run_bundle(
    tmp_path: Path,
    services: FakeServices,
    count: int,
    *,
    command: str = "true",
    heartbeat_interval: float = 60,
    attempt: int = 1,
    storage: Path | None = None,
) -> str:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    job: dict[str, Any] = {
        "address": "127.0.0.1:1",
        "token": "t",
        "production": "p",
        "transformation": "t",
        "command": command,
        "outputs": [],
        "heartbeat_interval": heartbeat_interval,
        **({"storage": str(storage)} if storage is not None else {}),
        "tasks": [
            {
                "task_id": task,
                "task_index": task,
                "attempt": attempt,
                "inputs": [],
                "lfn_prefix": f"/p/t/{task}/",
                "workdir": str(job_dir / f"t{task}-a{attempt}"),
            }
            for task in range(1, count + 1)
        ],
    }
    log = tmp_path / "job.log"  # the job's log: the wrapper's lines and the commands' output
    with open(log, "a", buffering=1) as out:
        bundle = _Bundle(job, job_dir, out)
        bundle.sender.close()
        bundle.reporter = services  # type: ignore[assignment]
        bundle.sender = ReportSender(services, bundle.say)  # type: ignore[arg-type]
        bundle.run()
    return log.read_text()


def test_a_bundle_asks_once_for_a_lease_not_once_per_attempt(tmp_path: Path) -> None:
    services = FakeServices(lease_seconds=60.0)
    run_bundle(tmp_path, services, 20)
    # One call for all the attempts still to start, each answered.
    assert services.leases == [[(task, 1) for task in range(1, 21)]]
    assert services.starts == [] and sorted(services.reported) == list(range(1, 21))


def test_a_lease_runs_out_and_the_next_attempt_asks_again(tmp_path: Path) -> None:
    services = FakeServices(lease_seconds=0.05)
    run_bundle(tmp_path, services, 3)
    assert 1 <= len(services.leases) <= 3 and sorted(services.reported) == [1, 2, 3]
    # Each asks for the attempts still to start.
    assert all(keys == [(task, 1) for task in range(keys[0][0], 4)] for keys in services.leases)


def test_withdrawn_attempts_never_start_and_the_job_leaves_no_scratch(tmp_path: Path) -> None:
    services = FakeServices(withdraw=True)
    log = run_bundle(tmp_path, services, 3)
    assert len(services.leases) == 1 and services.starts == [] and services.reported == []
    assert log.count("not started: withdrawn") == 3
    assert not (tmp_path / "job").exists()


def saved_checkpoint(storage: Path, task: int, content: str) -> Path:
    """A checkpoint archive as an earlier attempt of `task` saved it: one file, `step1`."""
    (storage / "src").mkdir(parents=True, exist_ok=True)
    (storage / "src" / "step1").write_text(content)
    archive = storage / "checkpoints" / str(task) / "checkpoint.tar"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w") as tar:
        tar.add(storage / "src" / "step1", arcname="step1")
    return archive


class StagedFirst(FakeServices):
    """Records, at each lease asked, which attempts had their checkpoint already restored."""

    def __init__(self, job_dir: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_dir = job_dir
        self.restored_at_lease: list[bool] = []

    def lease(self, keys: list[tuple[int, int]]) -> tuple[list[tpb.HeartbeatResponse], float]:
        task, attempt = keys[0]
        step1 = self.job_dir / f"t{task}-a{attempt}" / ".checkpoint" / "step1"
        self.restored_at_lease.append(step1.is_file())
        return super().lease(keys)


def test_an_attempt_is_staged_before_its_start_lease_is_taken(tmp_path: Path) -> None:
    """The checkpoint is restored (and inputs fetched) before the lease is asked, so the lease
    covers the command's start only; the command finds its checkpoint."""
    storage = tmp_path / "storage"
    saved_checkpoint(storage, 1, "done by attempt 1\n")
    services = StagedFirst(tmp_path / "job", lease_seconds=0.05)
    log = run_bundle(tmp_path, services, 1, attempt=2, storage=storage, command='cat "$METAPROD_CHECKPOINT_DIR/step1"')
    assert services.restored_at_lease == [True] and services.reported == [1]
    assert "checkpoint: 1 files restored" in log
    assert "done by attempt 1" in log


def test_an_attempt_staged_then_withdrawn_leaves_nothing(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    archive = saved_checkpoint(storage, 1, "kept\n")
    before = archive.read_bytes()
    services = StagedFirst(tmp_path / "job", withdraw=True)
    log = run_bundle(tmp_path, services, 1, attempt=2, storage=storage)
    assert services.restored_at_lease == [True] and services.reported == []
    assert "not started: withdrawn" in log
    assert archive.read_bytes() == before  # not saved again: its command never ran
    assert not (tmp_path / "job").exists()


def test_a_lease_that_ran_out_on_its_way_is_not_used(tmp_path: Path) -> None:
    """Slow services: the time a request took counts against its lease; past it, each attempt
    is started by a call of its own, decided in a transaction."""
    services = FakeServices(lease_seconds=0.05, delay=0.1)
    run_bundle(tmp_path, services, 2)
    assert services.starts == [(1, 1), (2, 1)] and sorted(services.reported) == [1, 2]


class Refused(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAUTHENTICATED

    def details(self) -> str:
        return "worker token ... is no longer valid: every attempt it was made for has ended"


class TokenDied(FakeServices):
    """Services that no longer know the job's token: its attempts all ended (lost, killed)."""

    def heartbeat(self, beats: list[tpb.HeartbeatRequest]) -> list[tpb.HeartbeatResponse]:
        raise Refused()


def test_a_job_whose_token_died_stops_its_attempts(tmp_path: Path) -> None:
    """A refused token means no attempt of the job is live any more: the running command is
    killed at the first beat, and the attempts waiting their turn never start."""
    services = TokenDied(lease_seconds=60.0)
    started = time.monotonic()
    run_bundle(tmp_path, services, 2, command="sleep 30", heartbeat_interval=0.2)
    assert time.monotonic() - started < 10, "the command ran on after the token died"
    assert services.reported == []  # superseded attempts report nothing; the waiting one never ran


def test_a_symlink_in_place_of_a_work_directory_is_replaced_by_a_directory(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    workdir = tmp_path / "job" / "t2-a1"
    workdir.parent.mkdir()
    workdir.symlink_to(host)
    WorkDirectories().take(workdir)
    assert workdir.is_dir() and not workdir.is_symlink() and host.is_dir()


def test_attempts_handed_over_ahead_keep_their_own_sections(tmp_path: Path) -> None:
    """In the job's sandbox the next attempt is handed to the runner while one runs: each
    attempt's output still lands in its own section of the log, whole, once."""
    services = FakeServices(lease_seconds=60.0)
    log = run_bundle(tmp_path, services, 20, command='echo "out of $METAPROD_TASK_ID"; printf tail')
    assert sorted(services.reported) == list(range(1, 21))
    for task in range(1, 21):
        part = joblog.attempt_part(log, task, 1)
        assert part.count(f"out of {task}\ntail") == 1, part
        assert all(f"out of {other}\n" not in part for other in range(1, 21) if other != task)
        assert log.count(joblog.section_header(task, 1)) == 1


def test_an_attempt_handed_over_whose_lease_ran_out_in_the_queue_starts_under_a_new_one(tmp_path: Path) -> None:
    """Handed over while a long command ran, the next attempt's start deadline (its lease)
    passed before its turn: the runner did not start it, and the wrapper starts it the
    usual way, under a new lease, with one section in the log."""
    services = FakeServices(lease_seconds=0.3)
    command = 'if [ "$METAPROD_TASK_ID" = 3 ]; then sleep 0.6; fi; echo "ran $METAPROD_TASK_ID"'
    log = run_bundle(tmp_path, services, 5, command=command)
    assert sorted(services.reported) == [1, 2, 3, 4, 5]
    assert len(services.leases) >= 2  # the one after the long command asked again
    for task in range(1, 6):
        part = joblog.attempt_part(log, task, 1)
        assert part.count(f"ran {task}\n") == 1 and log.count(joblog.section_header(task, 1)) == 1, log
