"""Agent-side CLI commands plugged into `metaprod`: `up` (services, agents and dashboard in
one process), `agents` (agents alone, against a shared database), `job run` (the wrapper)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from metaprod.agents.finalize import FinalizeAgent
from metaprod.agents.input import InputAgent
from metaprod.agents.jobs import BackendPool
from metaprod.agents.monitor import MonitorAgent
from metaprod.agents.production import ProductionAgent
from metaprod.agents.runner import Agent, AgentRunner
from metaprod.agents.settings import AgentSettings
from metaprod.agents.submit import SubmitAgent
from metaprod.agents.tasks import TaskAgent
from metaprod.db.session import Database
from metaprod.services.launcher import (
    add_database_options,
    add_server_options,
    configure_logging,
    open_database,
    start_services,
    stop_event,
    write_admin_token,
)

AGENT_NAMES = ("input", "tasks", "submit", "monitor", "finalize", "production")


def build_agents(settings: AgentSettings, backends: BackendPool, only: list[str] | None = None) -> list[Agent]:
    every: dict[str, Agent] = {
        "input": InputAgent(),
        "tasks": TaskAgent(),
        "submit": SubmitAgent(settings, backends),
        "monitor": MonitorAgent(settings, backends),
        "finalize": FinalizeAgent(settings),
        "production": ProductionAgent(),
    }
    names = only or list(AGENT_NAMES)
    unknown = sorted(set(names) - set(every))
    if unknown:
        raise ValueError(f"unknown agent {unknown[0]!r}: use {', '.join(AGENT_NAMES)}")
    return [every[name] for name in names]


def settings_from_args(args: argparse.Namespace, address: str) -> AgentSettings:
    overrides: dict[str, Any] = {}
    config = getattr(args, "agent_config", None) or os.environ.get("METAPROD_AGENT_CONFIG")
    if config:
        overrides = json.loads(Path(config).read_text()) if not config.lstrip().startswith("{") else json.loads(config)
    return AgentSettings(data_dir=Path(args.data_dir).resolve(), services_address=address, **overrides)


def make_runner(database: Database, settings: AgentSettings, only: list[str] | None) -> tuple[AgentRunner, BackendPool]:
    backends = BackendPool(settings.backends)
    runner = AgentRunner(database, build_agents(settings, backends, only), poll_seconds=settings.poll_seconds)
    return runner, backends


def _up(args: argparse.Namespace) -> int:
    configure_logging()
    data_dir = Path(args.data_dir).resolve()
    database = open_database(args, create=True)
    token_path = write_admin_token(database, data_dir)
    server = start_services(database, args)
    settings = settings_from_args(args, server.address)
    runner, backends = make_runner(database, settings, None)
    backends.warm("local")  # the default backend: its first jobs start at once
    server.context.on_new_work.append(lambda kind: runner.wake([kind]))
    print(f"metaprod is up: gRPC on {server.address}, data in {data_dir}", flush=True)
    print(f"admin token in {token_path}: export METAPROD_TOKEN=$(cat {token_path})", flush=True)
    if args.http_port:
        print(f"dashboard on http://{args.host}:{args.http_port}/", flush=True)
    stop = stop_event()
    try:
        runner.run_forever(stop)
    finally:
        server.stop()
        backends.close()
        database.dispose()
    return 0


def _agents(args: argparse.Namespace) -> int:
    configure_logging()
    database = open_database(args, create=False)
    address = os.environ.get("METAPROD_ADDRESS", "127.0.0.1:50051")
    settings = settings_from_args(args, address)
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    runner, backends = make_runner(database, settings, only)
    try:
        if args.once:
            for name, status in runner.run_all_once().items():
                print(f"{name}: {status}")
            return 0
        if "submit" in (only or AGENT_NAMES):
            backends.warm("local")  # the default backend: its first jobs start at once
        runner.run_forever(stop_event(), watch_seconds=settings.watch_seconds)
    finally:
        backends.close()
        database.dispose()
    return 0


def _job_run(args: argparse.Namespace) -> int:
    from metaprod.agents.wrapper import run_job_file

    return run_job_file(args.job_file)


def register(subparsers: Any) -> None:
    up = subparsers.add_parser("up", help="start services, agents and dashboard in one process")
    add_database_options(up)
    add_server_options(up)
    up.add_argument("--agent-config", default=None, help="JSON file (or inline JSON) of agent settings")
    up.set_defaults(handler=_up)
    agents = subparsers.add_parser("agents", help="run the agents against a shared database")
    add_database_options(agents)
    agents.add_argument("--only", default="", help=f"comma-separated subset of {','.join(AGENT_NAMES)}")
    agents.add_argument("--once", action="store_true", help="run one cycle of each agent and exit")
    agents.add_argument("--agent-config", default=None, help="JSON file (or inline JSON) of agent settings")
    agents.set_defaults(handler=_agents)
    job = subparsers.add_parser("job", help="job wrapper commands (run on the worker)")
    job_sub = job.add_subparsers(dest="job_command", required=True)
    run = job_sub.add_parser("run", help="run one task attempt from its job file")
    run.add_argument("job_file")
    run.set_defaults(handler=_job_run)
