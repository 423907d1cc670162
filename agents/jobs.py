"""Backends shared by the submit and monitor agents of one process, and the preparation of
a claimed task attempt as a job: its own directory, its job file, its environment."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metaprod.agents.backends.base import JobBackend, JobSpec, make_backend
from metaprod.agents.settings import AgentSettings
from metaprod.db.jobs import ClaimedJob

WRAPPER_ENTRY = "metaprod.agents.wrapper:run_job_file"


class BackendPool:
    """Backends are made on first use, one per name, and closed together."""

    def __init__(self, configs: Mapping[str, Mapping[str, Any]]) -> None:
        self._configs = configs
        self._backends: dict[str, JobBackend] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> JobBackend:
        with self._lock:
            if name not in self._backends:
                self._backends[name] = make_backend(name, self._configs.get(name, {}))
            return self._backends[name]

    def warm(self, name: str) -> None:
        """Start a backend now rather than at its first job, with its workers ready to run
        the wrapper where it has persistent ones (the local pool)."""
        warm = getattr(self.get(name), "warm", None)
        if warm is not None:
            warm([WRAPPER_ENTRY.partition(":")[0]])

    def started(self) -> dict[str, JobBackend]:
        with self._lock:
            return dict(self._backends)

    def close(self) -> None:
        with self._lock:
            for backend in self._backends.values():
                backend.close()
            self._backends.clear()


def job_key(bundle: Sequence[ClaimedJob]) -> str:
    first = bundle[0]
    return f"t{first.task_id}-a{first.attempt}" + (f"+{len(bundle) - 1}" if len(bundle) > 1 else "")


@dataclass(frozen=True)
class JobLayout:
    """Where a job's files go. The job's directory holds its job file and the pid and cancel
    marks, and one empty work directory per attempt (the command's cwd); it is the last
    attempt's scratch, disposed of at once when that attempt is finalized (reports come in
    order, so it is finalized last). One log for the job, with a section per attempt
    (metaprod.core.joblog). Creating or removing a file costs as much as a trivial job on some
    file systems: a job makes one directory per attempt and nothing else per attempt."""

    job_dir: Path
    workdirs: list[Path]
    log: Path

    @property
    def scratch(self) -> list[str | None]:
        return [None] * (len(self.workdirs) - 1) + [str(self.job_dir)]


def job_layout(bundle: Sequence[ClaimedJob], settings: AgentSettings) -> JobLayout:
    job_dir = settings.work_root / job_key(bundle)
    log_root = settings.log_root
    return JobLayout(
        job_dir=job_dir,
        workdirs=[job_dir / f"t{j.task_id}-a{j.attempt}" for j in bundle],
        # A directory per thousand tasks, not one per task.
        log=log_root / str(bundle[0].task_id // 1000) / f"{job_key(bundle)}.log",
    )


def prepare_job(bundle: Sequence[ClaimedJob], settings: AgentSettings) -> JobSpec:
    """Describe one job running these claimed attempts (one transformation's, sharing one
    worker token) one after the other, and write its job file (0600: it holds the token).
    The wrapper makes each attempt's work directory just before its command starts."""
    first = bundle[0]
    layout = job_layout(bundle, settings)
    layout.job_dir.mkdir(parents=True, exist_ok=True)
    layout.log.parent.mkdir(parents=True, exist_ok=True)
    tasks = [
        {
            "task_id": job.task_id,
            "task_index": job.task_index,
            "attempt": job.attempt,
            "inputs": [{"lfn": i.lfn, "pfn": i.pfn} for i in job.inputs],
            "lfn_prefix": job.lfn_prefix,
            "workdir": str(workdir),
        }
        for job, workdir in zip(bundle, layout.workdirs, strict=True)
    ]
    job_file = layout.job_dir / "job.json"
    payload = {
        "production": first.production,
        "transformation": first.transformation,
        "command": first.command,
        "outputs": list(first.outputs),
        "storage": settings.storage,
        "address": settings.services_address,
        "token": first.secret,
        "heartbeat_interval": settings.heartbeat_interval,
        "max_runtime": first.max_runtime,
        "env": dict(first.env),
        "max_output_bytes": first.max_output_bytes,
        "data_dir": str(settings.data_dir),
        "sandbox": settings.sandbox,
        "sandbox_writable": list(settings.sandbox_writable),
        "log_keep_bytes": settings.log_keep_bytes,
        "tasks": tasks,
    }
    if settings.job_tls:
        payload["tls"] = settings.job_tls
    fd = os.open(job_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh)
    log_path = layout.log
    return JobSpec(
        key=job_key(bundle),
        argv=(sys.executable, "-m", "metaprod.agents.wrapper", str(job_file)),
        env={"METAPROD_JOB_FILE": str(job_file)},
        workdir=layout.job_dir,
        log_path=log_path,
        options=dict(first.backend_options),
        # Backends with Python workers call the wrapper in-process (no interpreter start).
        python_entry=(WRAPPER_ENTRY, (str(job_file), str(log_path))),
    )


def plan_bundles(
    claimed: Sequence[ClaimedJob], capacity: Callable[[str], int], max_bundle: int
) -> list[list[ClaimedJob]]:
    """Split claimed attempts into jobs. Attempts of one transformation on one backend share
    a job when there are more of them than the backend runs at once: a job per slot (up to
    `max_bundle` attempts each) keeps every slot busy while each job amortizes its start,
    directory, log, heartbeat and reports over its attempts; a lone attempt (the data-driven
    case) always gets a job of its own."""
    groups: dict[tuple[str, str, str], list[ClaimedJob]] = {}
    for job in claimed:
        groups.setdefault((job.backend, job.production, job.transformation), []).append(job)
    bundles: list[list[ClaimedJob]] = []
    for (backend, _, _), jobs in groups.items():
        size = max(1, min(max_bundle, -(-len(jobs) // max(1, capacity(backend)))))
        bundles.extend(jobs[i : i + size] for i in range(0, len(jobs), size))
    return bundles
