"""Agent settings: one value object built by the launcher (never at import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AgentSettings:
    data_dir: Path
    # Where job wrappers report (the services' gRPC address).
    services_address: str = "127.0.0.1:50051"
    # fsspec URL under which outputs are stored; default: DATA_DIR/storage.
    storage_url: str = ""
    # Safety-net poll periods; new work also wakes the agents at once.
    poll_seconds: float = 5.0
    # Agents apart from the services look for new work in the database this often.
    watch_seconds: float = 0.25
    batch_size: int = 500
    # At most this many task attempts of one transformation run one after the other in one
    # job (a bundle) when more are due than their backend runs at once; 1: one job per task.
    max_bundle: int = 32
    retry_backoff_seconds: float = 5.0
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 60.0
    # A submitted attempt with no backend job id after this long died with its submitter.
    submit_grace_seconds: float = 60.0
    # A job its backend reports finished, without a report after this long, was lost.
    report_grace_seconds: float = 15.0
    max_queued_per_backend: dict[str, int] = field(default_factory=dict)
    max_queued_per_transformation: int = 0
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Absolute once, not per job: jobs run elsewhere, and resolving costs system calls.
        object.__setattr__(self, "data_dir", Path(self.data_dir).resolve())

    @property
    def storage(self) -> str:
        return self.storage_url or str(self.data_dir / "storage")

    @property
    def work_root(self) -> Path:
        return self.data_dir / "work"

    @property
    def log_root(self) -> Path:
        return self.data_dir / "logs"
