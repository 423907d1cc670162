"""`metaprod status`, `metaprod agents status`, `metaprod token ...`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from metaprod.clients import render
from metaprod.clients import types as t
from metaprod.clients.cli_common import (
    SubParsers,
    add_group,
    console,
    emit_json,
    note,
    open_client,
)
from metaprod.clients.errors import ServiceUnavailable
from metaprod.core.auth import parse_expiry
from metaprod.core.errors import DomainError

ROLES = ("admin", "user", "reader", "worker")
# An agent that stopped (or stopped beating) longer ago than this is left out unless --all.
GONE_AFTER = timedelta(minutes=10)


def shown_agents(agents: Sequence[t.Agent], *, all: bool, now: datetime | None = None) -> list[t.Agent]:
    """Live agents, and those that stopped recently; every agent ever seen with `all`."""
    if all:
        return list(agents)
    cutoff = (now or datetime.now(UTC)) - GONE_AFTER
    return [a for a in agents if a.alive or (a.last_beat is not None and a.last_beat >= cutoff)]


def register(subparsers: SubParsers) -> None:
    p = subparsers.add_parser(
        "status", help="check that the services answer; show identity and agents", description=cmd_status.__doc__
    )
    p.set_defaults(handler=cmd_status)

    agents = add_group(
        subparsers, "agents", "run the agents against a shared database; `agents status`: their heartbeats"
    )
    p = agents.add_parser(
        "status",
        help="agent heartbeats (Admin.ListAgents)",
        description=f"Live agents and those stopped in the last {GONE_AFTER.seconds // 60} minutes; --all: every one.",
    )
    p.add_argument("--all", action="store_true", help="also agents stopped or silent for long")
    p.set_defaults(handler=cmd_agents_status)

    tokens = add_group(subparsers, "token", "bearer tokens (admin)")
    p = tokens.add_parser("create", help="create a token; its secret is printed once")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--owner", default="", help="owner of what the token creates (default: the name)")
    p.add_argument(
        "--expires",
        metavar="WHEN",
        help="when the token stops being valid: a span from now (90m, 12h, 30d, 2w) or an ISO-8601 datetime "
        "(UTC unless it gives a zone); default: valid until revoked",
    )
    p.set_defaults(handler=cmd_token_create)
    p = tokens.add_parser("list", help="list tokens")
    p.set_defaults(handler=cmd_token_list)
    p = tokens.add_parser("revoke", help="revoke a token")
    p.add_argument("name")
    p.set_defaults(handler=cmd_token_revoke)


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 when the services answer (3 when unreachable, 1 when not serving). Shows the
    address, the caller's identity and the agents' heartbeats."""
    with open_client(args) as client:
        health = client.health()  # ServiceUnavailable when nobody answers
        identity: t.Identity | None = None
        agents: list[t.Agent] = []
        problems: list[str] = []
        # The server answered its health check: a call that is then UNAVAILABLE (no database
        # connection free in time, say) means it cannot serve, which is what status reports.
        unavailable = False
        try:
            identity = client.admin.whoami()
        except ServiceUnavailable as exc:
            unavailable = True
            problems.append(f"whoami: {exc.message}")
        except DomainError as exc:
            problems.append(f"whoami: {exc.message}")
        if identity is not None:
            try:
                agents = shown_agents(client.admin.list_agents(), all=False)
            except ServiceUnavailable as exc:
                unavailable = True
                problems.append(f"agents: {exc.message}")
            except DomainError as exc:
                problems.append(f"agents: {exc.message}")
        serving = health in ("SERVING", "UNIMPLEMENTED") and not unavailable
        if args.json:
            doc: dict[str, Any] = {
                "address": client.address,
                "ok": serving,
                "health": health,
                "whoami": render.identity_json(identity) if identity else None,
                "agents": [render.agent_json(a) for a in agents],
                "problems": problems,
            }
            emit_json(doc)
        else:
            out = console()
            who = f"{identity.name} (role {identity.role}, owner {identity.owner})" if identity else "-"
            out.print(
                render.key_values(
                    None,
                    [("address", client.address), ("health", health.lower().replace("_", " ")), ("identity", who)],
                )
            )
            for problem in problems:
                out.print(f"warning: {problem}")
            if identity is not None:
                out.print(render.agents_table(agents) if agents else "no agent has reported yet")
    return 0 if serving else 1


def cmd_agents_status(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        agents = shown_agents(client.admin.list_agents(), all=args.all)
    if args.json:
        emit_json([render.agent_json(a) for a in agents])
    elif agents:
        console().print(render.agents_table(agents))
    else:
        console().print("no agent has reported yet")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    expires_at = None if args.expires is None else parse_expiry(args.expires, datetime.now(UTC))
    with open_client(args) as client:
        new = client.admin.create_token(args.name, args.role, args.owner, expires_at=expires_at)
    if args.json:
        emit_json({"token": render.token_json(new.token), "secret": new.secret})
    else:
        # The secret alone on stdout (TOKEN=$(metaprod token create ...)); the rest on stderr.
        print(new.secret)
        note(
            f"created token {new.token.name!r} (role {new.token.role}, owner {new.token.owner}"
            + (f", expires {new.token.expires_at.isoformat(timespec='seconds')}" if new.token.expires_at else "")
            + "); the secret above is shown only once"
        )
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        tokens = client.admin.list_tokens()
    if args.json:
        emit_json([render.token_json(k) for k in tokens])
    else:
        console().print(render.tokens_table(tokens))
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        token = client.admin.revoke_token(args.name)
    if args.json:
        emit_json(render.token_json(token))
    else:
        console().print(f"revoked token {token.name!r}")
    return 0
