"""Agent-side CLI commands plugged into `metaprod`: `up` (services, agents and dashboard in
one process), `agents` (agents alone, against a shared database), `job run` (the wrapper)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from metaprod.agents.finalize import FinalizeAgent
from metaprod.agents.input import InputAgent
from metaprod.agents.jobs import BackendPool
from metaprod.agents.monitor import MonitorAgent
from metaprod.agents.production import ProductionAgent
from metaprod.agents.runner import Agent, AgentRunner
from metaprod.agents.sampler import SamplerAgent
from metaprod.agents.sandbox import MODES as SANDBOXES
from metaprod.agents.settings import AgentSettings, agent_settings
from metaprod.agents.submit import SubmitAgent
from metaprod.agents.tasks import TaskAgent
from metaprod.core.errors import InvalidArgument
from metaprod.db.session import Database
from metaprod.services.config import Settings
from metaprod.services.datadir import private_umask
from metaprod.services.launcher import (
    DataDirLock,
    add_database_options,
    add_job_tls_options,
    add_server_options,
    add_storage_option,
    configure_logging,
    ensure_port_free,
    open_database,
    private_state,
    settings_of,
    start_services,
    stop_event,
    tls_of,
    write_admin_token,
)
from metaprod.services.tls import ServerTls, job_tls

AGENT_NAMES = ("input", "tasks", "submit", "monitor", "finalize", "production", "sampler")


def build_agents(settings: AgentSettings, backends: BackendPool, only: list[str] | None = None) -> list[Agent]:
    every: dict[str, Agent] = {
        "input": InputAgent(),
        "tasks": TaskAgent(),
        "submit": SubmitAgent(settings, backends),
        "monitor": MonitorAgent(settings, backends),
        "finalize": FinalizeAgent(settings),
        "production": ProductionAgent(settings),
        "sampler": SamplerAgent(settings),
    }
    names = only or list(AGENT_NAMES)
    unknown = sorted(set(names) - set(every))
    if unknown:
        raise ValueError(f"unknown agent {unknown[0]!r}: use {', '.join(AGENT_NAMES)}")
    return [every[name] for name in names]


def agent_settings_of(settings: Settings, address: str, tls: dict[str, str] | None = None) -> AgentSettings:
    """The agent settings: the configuration file's [agents] table, then --agent-config /
    METAPROD_AGENT_CONFIG (a JSON file or inline JSON) over it; type-checked. `tls`: how the
    job wrappers reach the services (metaprod.services.tls.job_tls)."""
    values: dict[str, Any] = dict(settings.agents)
    given = settings.agent_config
    if given:
        text = given if given.lstrip().startswith("{") else _read(Path(given))
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"agent settings {given[:60]!r}: invalid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise InvalidArgument(f"agent settings are a JSON object, not {type(loaded).__name__}")
        values.update(loaded)
    if settings.storage:
        values["storage_url"] = settings.storage
    return agent_settings(
        values, data_dir=settings.data_dir, services_address=address, job_tls=tls, sandbox=settings.sandbox
    )


def up_job_tls(settings: Settings, tls: ServerTls | None) -> dict[str, str]:
    """The job wrappers of `up` call its own services: over TLS when they take it, trusting
    --tls-ca (default: the server's certificate file, which then holds its CA or is
    self-signed) and presenting the server's certificate when client certificates are required."""
    if tls is None:
        return {}
    client = tls.requires_client_certificate
    return job_tls(
        settings.tls_ca or tls.cert_file, tls.cert_file if client else None, tls.key_file if client else None
    )


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise InvalidArgument(f"agent settings file {path}: {exc.strerror or exc}") from None


def make_runner(database: Database, settings: AgentSettings, only: list[str] | None) -> tuple[AgentRunner, BackendPool]:
    backends = BackendPool(settings.backends)
    runner = AgentRunner(database, build_agents(settings, backends, only), poll_seconds=settings.poll_seconds)
    return runner, backends


def _up(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    configure_logging(settings.log_level)
    data_dir = settings.data_dir.resolve()
    # Everything that can refuse is checked before anything is written or migrated.
    tls = tls_of(settings)
    jobs_tls = up_job_tls(settings, tls)
    agent_settings_of(settings, settings.address, jobs_tls)
    private_umask()  # the data directory and everything in it are the user's alone
    lock = DataDirLock(data_dir)
    if data_dir.exists():  # another `up` may hold it: say so before a port clash does
        lock.acquire()
    try:
        ensure_port_free(settings.host, settings.port, "gRPC")
        ensure_port_free(settings.host, settings.http_port, "HTTP dashboard")
        if not lock.held:
            lock.acquire()
        private_state(settings, create=True)
        database = open_database(settings, create=True)
        try:
            return _run_up(settings, database, data_dir, tls, jobs_tls)
        finally:
            database.dispose()
    finally:
        lock.release()


def _run_up(
    settings: Settings, database: Database, data_dir: Path, tls: ServerTls | None, jobs_tls: dict[str, str]
) -> int:
    token_path = write_admin_token(database, data_dir)
    # The services list the checkpoints where the agents store them (--agent-config may name it).
    storage = agent_settings_of(settings, settings.address, jobs_tls).storage
    server = start_services(database, settings, tls, storage=storage)
    agent_settings = agent_settings_of(settings, server.address, jobs_tls)
    runner, backends = make_runner(database, agent_settings, None)
    backends.warm("local")  # the default backend: its first jobs start at once
    server.context.on_new_work.append(lambda kind: runner.wake([kind]))
    secure = " (TLS)" if tls else ""
    print(f"metaprod is up: gRPC on {server.address}{secure}, data in {data_dir}", flush=True)
    print(f"admin token in {token_path}: export METAPROD_TOKEN=$(cat {token_path})", flush=True)
    if settings.http_port:
        scheme = "https" if tls else "http"
        print(f"dashboard on {scheme}://{settings.host}:{settings.http_port}/", flush=True)
    stop = stop_event()
    try:
        runner.run_forever(stop)
    finally:
        server.stop()
        backends.close()
    return 0


def _agents(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    configure_logging(settings.log_level)
    tls = job_tls(settings.tls_ca, settings.tls_cert, settings.tls_key)
    agent_settings = agent_settings_of(settings, settings.address, tls)
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    private_state(settings, create=False)  # job directories, logs and outputs: the user's alone
    database = open_database(settings, create=False)
    runner, backends = make_runner(database, agent_settings, only)
    try:
        if args.once:
            for name, status in runner.run_all_once().items():
                print(f"{name}: {status}")
            return 0
        if "submit" in (only or AGENT_NAMES):
            backends.warm("local")  # the default backend: its first jobs start at once
        runner.run_forever(stop_event(), watch_seconds=agent_settings.watch_seconds)
    finally:
        backends.close()
        database.dispose()
    return 0


def _job_run(args: argparse.Namespace) -> int:
    from metaprod.agents.wrapper import run_job_file, terminate_with_descendants

    terminate_with_descendants()
    return run_job_file(args.job_file)


def add_sandbox_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sandbox",
        default=None,
        choices=SANDBOXES,
        help="isolation of the jobs' commands: auto (bwrap where it works), bwrap or none "
        "(env METAPROD_SANDBOX; default auto)",
    )


def register(subparsers: Any) -> None:
    up = subparsers.add_parser("up", help="start services, agents and dashboard in one process")
    add_database_options(up)
    add_server_options(up)
    add_storage_option(up)
    up.add_argument(
        "--agent-config", default=None, help="JSON file (or inline JSON) of agent settings (env METAPROD_AGENT_CONFIG)"
    )
    add_job_tls_options(up, server=True)
    add_sandbox_option(up)
    up.set_defaults(handler=_up)
    agents = subparsers.add_parser("agents", help="run the agents against a shared database")
    add_database_options(agents)
    add_job_tls_options(agents, server=False)
    add_storage_option(agents)
    agents.add_argument("--only", default="", help=f"comma-separated subset of {','.join(AGENT_NAMES)}")
    agents.add_argument("--once", action="store_true", help="run one cycle of each agent and exit")
    agents.add_argument(
        "--agent-config", default=None, help="JSON file (or inline JSON) of agent settings (env METAPROD_AGENT_CONFIG)"
    )
    add_sandbox_option(agents)
    agents.set_defaults(handler=_agents)
    job = subparsers.add_parser("job", help="job wrapper commands (run on the worker)")
    job_sub = job.add_subparsers(dest="job_command", required=True)
    run = job_sub.add_parser("run", help="run one task attempt from its job file")
    run.add_argument("job_file")
    run.set_defaults(handler=_job_run)
