"""Python entries for the local backend's pool tests, imported by the pool workers (the
tests put this directory on the workers' PYTHONPATH)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from metaprod.agents.backends.base import CANCEL_FILE, PID_FILE


def run_command(script: str) -> int:
    """Run `script` by /bin/sh honouring the cancel contract, as the job wrapper does."""
    workdir = Path.cwd()
    if (workdir / CANCEL_FILE).exists():
        return 0
    print(f"entry in worker {os.getpid()}", flush=True)
    proc = subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True)
    (workdir / PID_FILE).write_text(str(proc.pid))
    if (workdir / CANCEL_FILE).exists():
        os.killpg(proc.pid, signal.SIGTERM)
    code = proc.wait()
    (workdir / PID_FILE).unlink(missing_ok=True)
    return code if code >= 0 else 128 - code


def boom() -> int:
    raise RuntimeError("boom from the entry")


def die() -> int:
    os._exit(7)


def loaded_modules(names: str) -> int:
    """Print which of the comma-separated modules this worker had imported before the job."""
    import sys

    print(f"entry in worker {os.getpid()}", flush=True)
    print(" ".join(name for name in names.split(",") if name in sys.modules), flush=True)
    return 0
