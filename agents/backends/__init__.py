"""Job backends: run a prepared job command for a task attempt on a batch system.

``make_backend("local" | "slurm" | "dask", config)`` builds one; see :mod:`.base` for the interface.
"""

from .base import (
    BackendError,
    JobBackend,
    JobSpec,
    JobState,
    JobStatus,
    backend_names,
    make_backend,
    register_backend,
)

__all__ = [
    "BackendError",
    "JobBackend",
    "JobSpec",
    "JobState",
    "JobStatus",
    "backend_names",
    "make_backend",
    "register_backend",
]
