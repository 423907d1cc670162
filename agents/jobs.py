"""Backends shared by the submit and monitor agents of one process, and the preparation of
a claimed task attempt as a job: its own directory, its job file, its environment."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Mapping
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

    def started(self) -> dict[str, JobBackend]:
        with self._lock:
            return dict(self._backends)

    def close(self) -> None:
        with self._lock:
            for backend in self._backends.values():
                backend.close()
            self._backends.clear()


def job_key(task_id: int, attempt: int) -> str:
    return f"t{task_id}-a{attempt}"


def prepare_job(job: ClaimedJob, settings: AgentSettings) -> JobSpec:
    """Write the attempt's job file (0600: it holds the worker token) and describe the job."""
    key = job_key(job.task_id, job.attempt)
    attempt_dir = (settings.work_root / key).resolve()
    attempt_dir.mkdir(parents=True, exist_ok=True)
    log_dir = (settings.log_root / str(job.task_id)).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    job_file = attempt_dir / "job.json"
    payload = {
        "task_id": job.task_id,
        "task_index": job.task_index,
        "attempt": job.attempt,
        "production": job.production,
        "transformation": job.transformation,
        "command": job.command,
        "outputs": list(job.outputs),
        "inputs": [{"lfn": i.lfn, "pfn": i.pfn} for i in job.inputs],
        "lfn_prefix": job.lfn_prefix,
        "storage": settings.storage,
        "address": settings.services_address,
        "token": job.secret,
        "heartbeat_interval": settings.heartbeat_interval,
    }
    fd = os.open(job_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh)
    log_path = log_dir / f"attempt-{job.attempt}.log"
    return JobSpec(
        key=key,
        argv=(sys.executable, "-m", "metaprod.agents.wrapper", str(job_file)),
        env={"METAPROD_JOB_FILE": str(job_file)},
        workdir=attempt_dir,
        log_path=log_path,
        options=dict(job.backend_options),
        # Backends with Python workers call the wrapper in-process (no interpreter start).
        python_entry=(WRAPPER_ENTRY, (str(job_file), str(log_path))),
    )
