"""The settings of the server-side commands (`up`, `serve`, `agents`, `db`): one model, read
from a TOML file, from `METAPROD_*` environment variables and from flags, with one precedence:

    flags > environment > file > defaults

The file is `--config FILE` or `METAPROD_CONFIG`; its keys are the field names below (an
`[agents]` table holds the agent settings). Every value is validated: a wrong type, a port
out of range or an unknown key is a one-line error naming the key and where it came from.
docs/configuration.md lists every setting.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from metaprod.core.errors import InvalidArgument
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ENV_PREFIX = "METAPROD_"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseModel):
    """Server-side settings; the field name is the file key, `METAPROD_<NAME>` the variable
    and `--<name>` (dashes for underscores) the flag."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(Path("./metaprod-data"), description="state directory: SQLite, tokens, logs, work dirs")
    db: str | None = Field(None, description="database URL (default: SQLite in the data directory)")
    host: str = Field("127.0.0.1", description="address the gRPC and HTTP servers listen on")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port")
    http_port: int = Field(0, ge=0, le=65535, description="dashboard and /metrics port (0: none)")
    metrics_open: bool = Field(False, description="serve /metrics without a token (the dashboard always takes one)")
    address: str = Field("127.0.0.1:50051", description="where agents' job wrappers report (the services)")
    tls_cert: Path | None = Field(
        None, description="PEM certificate: the servers' (up, serve); the job wrappers' client certificate (agents)"
    )
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    tls_client_ca: Path | None = Field(None, description="servers require client certificates signed by this CA")
    tls_ca: Path | None = Field(None, description="CA the job wrappers trust (agents; up: default tls_cert)")
    insecure_listen_anywhere: bool = Field(False, description="allow a non-loopback listen address without TLS")
    log_level: LogLevel = Field("INFO", description="logging level of the server processes")
    agent_config: str | None = Field(None, description="agent settings: a JSON file or inline JSON")
    storage: str | None = Field(
        None, description="fsspec URL of the outputs and checkpoints, e.g. s3://bucket/prefix (default DIR/storage)"
    )
    agents: dict[str, Any] = Field(default_factory=dict, description="agent settings (file only: an [agents] table)")
    sandbox: Literal["auto", "bwrap", "none"] = Field(
        "auto", description="isolation of the jobs' commands: auto (bwrap where it works, else none), bwrap, none"
    )


# Keys that the environment and flags may set (agents: only through agent_config or the file).
SETTABLE = tuple(name for name in Settings.model_fields if name != "agents")


def from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings given as METAPROD_<NAME> variables (empty ones are unset)."""
    found: dict[str, str] = {}
    for name in SETTABLE:
        value = environ.get(ENV_PREFIX + name.upper(), "").strip()
        if value:
            found[name] = value
    return found


def from_file(path: Path) -> dict[str, Any]:
    """The settings of a TOML file; a missing or malformed file is a one-line error."""
    try:
        with path.open("rb") as fh:
            values = tomllib.load(fh)
    except FileNotFoundError:
        raise InvalidArgument(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"configuration file {path}: invalid TOML: {exc}") from None
    return values


def resolve(
    flags: Mapping[str, Any], environ: Mapping[str, str], file_values: Mapping[str, Any], *, file_name: str = "file"
) -> Settings:
    """Merge the sources (flags > environment > file > defaults) and validate the result;
    an error names the key and the source of its value."""
    env = from_environment(environ)
    given = {k: v for k, v in flags.items() if v is not None and k in Settings.model_fields}
    merged: dict[str, Any] = {**file_values, **env, **given}
    source = {
        **dict.fromkeys(file_values, f"configuration {file_name}"),
        **{k: f"${ENV_PREFIX}{k.upper()}" for k in env},
        **{k: "--" + k.replace("_", "-") for k in given},
    }
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise InvalidArgument(describe(exc, source)) from None


def describe(
    exc: ValidationError,
    source: Mapping[str, str] | None = None,
    *,
    what: str = "setting",
    known: Iterable[str] = tuple(Settings.model_fields),
) -> str:
    """A pydantic error as one line: the first problem, naming the key and where it came from."""
    problems = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        key = str(error["loc"][0]) if error["loc"] else ""
        origin = f" (from {source[key]})" if source and key in source else ""
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown {what} {loc!r}{origin}; known: {', '.join(sorted(known))}")
        else:
            value = json.dumps(error.get("input"), default=str)
            shown = value if len(value) <= 60 else value[:57] + "..."
            problems.append(f"{what} {loc!r}{origin}: {error['msg']} (got {shown})")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0] + more


def load(flags: Mapping[str, Any], config: str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of a command: its flags, the environment and the configuration file
    (`config`, else $METAPROD_CONFIG)."""
    environ = os.environ if environ is None else environ
    path = config or environ.get(ENV_PREFIX + "CONFIG", "").strip() or None
    file_values = from_file(Path(path)) if path else {}
    return resolve(flags, environ, file_values, file_name=str(path))
