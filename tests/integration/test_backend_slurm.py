"""SlurmBackend against a real Slurm cluster (CI: deploy/slurm/setup-single-node.sh starts one).

Skipped when Slurm is absent or not answering, unless METAPROD_REQUIRE_SLURM=1 (then it fails,
so a CI whose cluster did not come up cannot go green by skipping).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from metaprod.agents.backends import BackendError, JobSpec, JobState, JobStatus, make_backend
from metaprod.agents.backends.slurm import SlurmBackend

from tests.integration.system import System


def _slurm_unavailable() -> str | None:
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH (start Slurm with deploy/slurm/setup-single-node.sh)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15)
        nodes = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Slurm is not responding: {exc}"
    if "UP" not in ping.stdout:
        return f"slurmctld is not responding: {(ping.stdout + ping.stderr).strip()}"
    usable = {"idle", "mix", "alloc", "comp"}
    if not usable & set(nodes.stdout.split()):
        return f"no usable Slurm node (sinfo states: {nodes.stdout.split()})"
    return None


_REASON = _slurm_unavailable()
if _REASON is not None:
    if os.environ.get("METAPROD_REQUIRE_SLURM") == "1":
        raise RuntimeError(f"METAPROD_REQUIRE_SLURM=1 but {_REASON}")
    pytest.skip(_REASON, allow_module_level=True)

FINAL = {JobState.SUCCEEDED, JobState.FAILED}


@pytest.fixture
def backend() -> SlurmBackend:
    b = make_backend("slurm", {"time": "5"})
    assert isinstance(b, SlurmBackend)
    return b


def spec(
    tmp_path: Path, key: str, argv: Sequence[str], env: dict[str, str] | None = None, **options: object
) -> JobSpec:
    workdir = tmp_path / key
    workdir.mkdir(exist_ok=True)
    return JobSpec(
        key=key, argv=tuple(argv), env=env or {}, workdir=workdir, log_path=tmp_path / f"{key}.log", options=options
    )


def sh(script: str) -> tuple[str, ...]:
    return ("/bin/sh", "-c", script)


def wait_states(
    backend: SlurmBackend, ids: Sequence[str], want: set[JobState], timeout: float = 60.0
) -> dict[str, JobStatus]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = backend.status(ids)
        if all(s.state in want for s in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs not in {want} after {timeout}s: {statuses}")
        time.sleep(0.2)


def test_success_env_cwd_quoting_and_log(backend: SlurmBackend, tmp_path: Path) -> None:
    job = spec(
        tmp_path,
        "s1-a1",
        [
            "/bin/sh",
            "-c",
            'echo "$1|$METAPROD_X|$SLURM_JOB_NAME"; pwd -P; echo err >&2',
            "sh",
            "arg with 'quotes' $HOME",
        ],
        env={"METAPROD_X": "va'l\"ue $PATH `x`"},
    )
    job.log_path.write_text("earlier\n")
    job_id = backend.submit(job)
    assert job_id.isdigit()
    assert wait_states(backend, [job_id], FINAL)[job_id] == JobStatus(JobState.SUCCEEDED, 0)
    assert job.log_path.read_text().splitlines() == [
        "earlier",
        "arg with 'quotes' $HOME|va'l\"ue $PATH `x`|s1-a1",
        str(job.workdir.resolve()),
        "err",
    ]


def test_failures_carry_exit_code_or_signal(backend: SlurmBackend, tmp_path: Path) -> None:
    failing = backend.submit(spec(tmp_path, "s2-a1", sh("exit 3")))
    killed = backend.submit(spec(tmp_path, "s2-a2", sh("kill -KILL $$")))
    statuses = wait_states(backend, [failing, killed], FINAL)
    assert statuses[failing].state is JobState.FAILED
    assert statuses[failing].exit_code == 3
    assert "exit code 3" in statuses[failing].reason
    assert statuses[killed].state is JobState.FAILED
    assert statuses[killed].exit_code == -9
    assert "SIGKILL" in statuses[killed].reason


def test_options_reach_sbatch(backend: SlurmBackend, tmp_path: Path) -> None:
    partition = subprocess.run(
        ["sinfo", "--noheader", "--format=%R"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    job = spec(
        tmp_path,
        "s3-a1",
        sh('echo "$SLURM_JOB_PARTITION|$SLURM_CPUS_PER_TASK"'),
        partition=partition,
        time="00:02:00",
        mem="16M",
        cpus_per_task=1,
        extra_args=["--comment=metaprod-test"],
    )
    job_id = backend.submit(job)
    assert wait_states(backend, [job_id], FINAL)[job_id].state is JobState.SUCCEEDED
    assert job.log_path.read_text().strip() == f"{partition}|1"
    shown = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    assert "Comment=metaprod-test" in shown


def test_percent_in_log_path_is_literal(backend: SlurmBackend, tmp_path: Path) -> None:
    job = spec(tmp_path, "s4-a1", sh("echo hi"))
    job = JobSpec(job.key, job.argv, job.env, job.workdir, tmp_path / "log-%j-%x.txt")
    job_id = backend.submit(job)
    assert wait_states(backend, [job_id], FINAL)[job_id].state is JobState.SUCCEEDED
    assert job.log_path.read_text() == "hi\n"


def test_pending_and_cancel(backend: SlurmBackend, tmp_path: Path) -> None:
    held = backend.submit(spec(tmp_path, "s5-a1", sh("touch ran"), extra_args=["--hold"]))
    running_job = spec(tmp_path, "s5-a2", sh("touch started; sleep 60"))
    running = backend.submit(running_job)
    status = backend.status([held])[held]
    assert status.state is JobState.PENDING
    assert "Held" in status.reason
    deadline = time.monotonic() + 60
    while not (running_job.workdir / "started").exists():
        assert time.monotonic() < deadline, backend.status([running])
        time.sleep(0.2)
    assert backend.status([running])[running].state is JobState.RUNNING
    backend.cancel([held, running, "999999999"])
    statuses = wait_states(backend, [held, running], FINAL)
    assert all(s.state is JobState.FAILED and "CANCELLED" in s.reason for s in statuses.values())
    assert not (tmp_path / "s5-a1" / "ran").exists()


def test_unknown_ids(backend: SlurmBackend) -> None:
    # One unknown id alone makes squeue fail; several are filtered: both must come back UNKNOWN.
    assert backend.status(["999999999"])["999999999"].state is JobState.UNKNOWN
    statuses = backend.status(["999999998", "999999997", "not-a-slurm-id"])
    assert {s.state for s in statuses.values()} == {JobState.UNKNOWN}


def test_sbatch_errors_raise(backend: SlurmBackend, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="sbatch failed"):
        backend.submit(spec(tmp_path, "s6-a1", sh("true"), partition="no-such-partition"))
    with pytest.raises(BackendError, match="extra_args"):
        backend.submit(spec(tmp_path, "s6-a2", sh("true"), extra_args="--hold"))
    with pytest.raises(BackendError, match="environment variable name"):
        backend.submit(spec(tmp_path, "s6-a3", sh("true"), env={"BAD-NAME": "x"}))


def test_capacity() -> None:
    cpus = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%N %c"], capture_output=True, text=True)
    total = sum(int(c) for _, c in dict(line.split() for line in cpus.stdout.splitlines()).items())
    assert make_backend("slurm", {}).capacity() == total
    assert make_backend("slurm", {"capacity": 7}).capacity() == 7
    with pytest.raises(BackendError, match="unknown config key"):
        make_backend("slurm", {"partiton": "debug"})
    with pytest.raises(BackendError, match="unknown default option"):
        make_backend("slurm", {"defaults": {"partiton": "debug"}})
    with pytest.raises(BackendError, match="'extra_args' must be list or tuple"):
        make_backend("slurm", {"extra_args": "--hold"})


def test_slurm_example_runs(system: System) -> None:
    """deploy/examples/slurm-reco.yaml end to end: its jobs go through sbatch."""
    system.up()
    example = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "slurm-reco.yaml"
    system.cli("production", "create", "-f", str(example))
    system.cli("production", "start", "slurm-reco")
    progress = system.wait_for("slurm-reco", timeout=300)
    assert all(t["status"] == "Completed" for t in progress["transformations"])
    assert len(system.json("catalog", "find", "datatype=reco")) == 2
