"""Agent settings: one value object built by the launcher (never at import), from the JSON of
`--agent-config` / `METAPROD_AGENT_CONFIG` or the `[agents]` table of the configuration file,
type-checked (docs/configuration.md lists them)."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from metaprod.agents.capture import DEFAULT_KEEP
from metaprod.core.errors import InvalidArgument
from pydantic import TypeAdapter, ValidationError


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
    max_bundle: int = 128
    retry_backoff_seconds: float = 5.0
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 60.0
    # A submitted attempt with no backend job id after this long died with its submitter.
    submit_grace_seconds: float = 60.0
    # A job its backend reports finished, without a report after this long, was lost.
    report_grace_seconds: float = 15.0
    # The sampler stores the transformations' counts this often (history plots) and keeps them this long.
    sample_seconds: float = 30.0
    sample_keep_days: float = 14.0
    max_queued_per_backend: dict[str, int] = field(default_factory=dict)
    max_queued_per_transformation: int = 0
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    # How job wrappers reach the services over TLS ({}: plaintext): "ca" (PEM text), and
    # "cert"/"key" (paths) when the services require client certificates. Set by the launcher.
    job_tls: dict[str, str] = field(default_factory=dict)
    # How commands are isolated (metaprod.agents.sandbox): auto, bwrap or none. Set by the
    # launcher from the server settings (--sandbox, METAPROD_SANDBOX, `sandbox` in the file).
    sandbox: str = "auto"
    # Host paths every sandbox shows read-write besides the work directory (a shared scratch).
    sandbox_writable: list[str] = field(default_factory=list)
    # An attempt's log keeps this many bytes of its output's head, and as many of its tail.
    log_keep_bytes: int = DEFAULT_KEEP

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


# Set by the launcher, never by the user's agent settings.
_DERIVED = frozenset({"data_dir", "services_address", "job_tls", "sandbox"})
AGENT_SETTING_NAMES = tuple(f.name for f in fields(AgentSettings) if f.name not in _DERIVED)


def agent_settings(
    values: Mapping[str, Any],
    *,
    data_dir: Path,
    services_address: str,
    job_tls: Mapping[str, str] | None = None,
    sandbox: str = "auto",
) -> AgentSettings:
    """AgentSettings from user-given values (JSON or a TOML table), type-checked: a wrong type
    or an unknown key is a one-line InvalidArgument naming the key; nothing is coerced from text."""
    if not isinstance(values, Mapping):
        raise InvalidArgument(f"agent settings are a JSON object, not {type(values).__name__}")
    unknown = sorted(set(values) - set(AGENT_SETTING_NAMES))
    if unknown:
        close = difflib.get_close_matches(unknown[0], AGENT_SETTING_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(AGENT_SETTING_NAMES)}"
        raise InvalidArgument(f"unknown agent setting {unknown[0]!r}{hint}")
    checked: dict[str, Any] = {}
    for name, value in values.items():
        try:
            checked[name] = _adapters()[name].validate_python(value, strict=True)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in (name, *error["loc"]))
            raise InvalidArgument(f"agent setting {where!r}: {error['msg']} (got {error.get('input')!r:.60})") from None
    if checked.get("log_keep_bytes", 1) < 1:
        raise InvalidArgument(f"agent setting 'log_keep_bytes': must be at least 1 (got {checked['log_keep_bytes']})")
    for path in checked.get("sandbox_writable", ()):
        if not Path(path).is_absolute():
            raise InvalidArgument(f"agent setting 'sandbox_writable': {path!r} is not an absolute path")
    return AgentSettings(
        data_dir=Path(data_dir),
        services_address=services_address,
        job_tls=dict(job_tls or {}),
        sandbox=sandbox,
        **checked,
    )


@functools.cache
def _adapters() -> dict[str, TypeAdapter[Any]]:
    hints = get_type_hints(AgentSettings)
    return {name: TypeAdapter(hints[name]) for name in AGENT_SETTING_NAMES}
