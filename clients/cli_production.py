"""`metaprod production ...`: create, validate, start/stop/delete/show/list, progress."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from datetime import datetime

from metaprod.clients import render
from metaprod.clients import types as t
from metaprod.clients.cli_common import (
    SubParsers,
    add_group,
    console,
    dumps,
    emit_json,
    load_spec,
    open_client,
)
from rich.live import Live

# A watch ends when the production has ended (or is being deleted); its exit status says how.
FINAL_STATUSES = frozenset({"Completed", "Partial", "Failed", "Cleaning", "Cleaned"})
# `progress --watch` exits 0 only when the production Completed.
WATCH_EXIT = {"Completed": 0, "Partial": 2, "Failed": 3}
WATCH_EXIT_GONE = 1


def register(subparsers: SubParsers) -> None:
    prod = add_group(subparsers, "production", "productions: graphs of transformations linked by metaqueries")

    p = prod.add_parser("create", help="create a production from a spec (YAML or JSON)")
    p.add_argument("-f", "--file", dest="spec", required=True, metavar="SPEC", help='spec file ("-": stdin)')
    p.set_defaults(handler=cmd_create)

    p = prod.add_parser("validate", help="validate a spec; exit 1 when it has errors")
    p.add_argument("-f", "--file", dest="spec", required=True, metavar="SPEC", help='spec file ("-": stdin)')
    p.set_defaults(handler=cmd_validate)

    p = prod.add_parser("add-transformation", help="add one transformation (spec entry) to a production")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-f", "--file", dest="spec", required=True, metavar="SPEC", help='spec file ("-": stdin)')
    p.set_defaults(handler=cmd_add_transformation)

    p = prod.add_parser("start", help="start (or resume) a production")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=cmd_change, action="start")
    p = prod.add_parser(
        "delete", help="delete a production's execution records (tasks, logs, scratch); its outputs stay"
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--purge-outputs", action="store_true", help="also remove the files it produced from the catalog and storage"
    )
    p.set_defaults(handler=cmd_change, action="delete")
    p = prod.add_parser("stop", help="stop a production (--kill: kill its running tasks)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--kill", action="store_true", help="kill running tasks")
    p.set_defaults(handler=cmd_change, action="stop")

    p = prod.add_parser("show", help="a production and its transformations")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=cmd_show)

    p = prod.add_parser("list", help="list productions")
    p.add_argument("--status", default=None, help="only productions in this status")
    p.add_argument("--all", action="store_true", help="also deleted (Cleaned) productions")
    p.set_defaults(handler=cmd_list)

    p = prod.add_parser("close", help="close the input of its catalog-fed roots: it ends once nothing is pending")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=cmd_close)

    p = prod.add_parser("history", help="every change of state, oldest first, with its time and actor")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=cmd_history)

    p = prod.add_parser(
        "progress",
        help="file and task counts per transformation",
        description="With --watch: follow until the production ends; exit 0 when Completed, "
        "2 when Partial, 3 when Failed, 1 when it was deleted meanwhile.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--watch", action="store_true", help="follow until the production ends (Ctrl-C stops)")
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="watch refresh interval (default 2)")
    p.set_defaults(handler=cmd_progress)


def _print_findings(title: str, findings: tuple[t.Finding, ...]) -> None:
    if findings:
        console().print(render.findings_table(title, findings))


def cmd_create(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    with open_client(args) as client:
        created = client.productions.create(spec)
    if args.json:
        emit_json(
            {
                "production": render.production_json(created.production),
                "warnings": [render.finding_json(f) for f in created.warnings],
            }
        )
    else:
        p = created.production
        console().print(f"created production {p.name} ({p.status}) with {len(p.transformations)} transformation(s)")
        _print_findings("Warnings", created.warnings)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    with open_client(args) as client:
        result = client.productions.validate(spec)
    failed = bool(result.errors) or not result.ok
    if args.json:
        emit_json(
            {
                "ok": not failed,
                "errors": [render.finding_json(f) for f in result.errors],
                "warnings": [render.finding_json(f) for f in result.warnings],
            }
        )
    else:
        _print_findings("Errors", result.errors)
        _print_findings("Warnings", result.warnings)
        summary = f"{len(result.errors)} error(s), {len(result.warnings)} warning(s)"
        console().print(f"spec is invalid: {summary}" if failed else f"spec is valid ({summary})")
    return 1 if failed else 0


def cmd_add_transformation(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    with open_client(args) as client:
        created = client.productions.add_transformation(args.name, spec)
    if args.json:
        emit_json(
            {
                "transformation": render.transformation_json(created.transformation),
                "warnings": [render.finding_json(f) for f in created.warnings],
            }
        )
    else:
        tr = created.transformation
        console().print(f"added transformation {tr.name} to {tr.production or args.name} ({tr.status})")
        _print_findings("Warnings", created.warnings)
    return 0


def cmd_change(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        if args.action == "start":
            production = client.productions.start(args.name)
        elif args.action == "stop":
            production = client.productions.stop(args.name, kill=args.kill)
        else:
            production = client.productions.delete(args.name, purge_outputs=args.purge_outputs)
    if args.json:
        emit_json(render.production_json(production))
    else:
        console().print(f"production {production.name} is {production.status}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        production = client.productions.get(args.name)
    if args.json:
        emit_json(render.production_json(production))
        return 0
    out = console()
    out.print(
        render.key_values(
            None,
            [
                ("production", production.name),
                ("status", production.status),
                ("owner", production.owner or "-"),
                ("outputs", f"/{production.namespace or production.name}/..."),
                ("description", production.description or "-"),
                ("created", render.when(production.created_at)),
                ("updated", render.when(production.updated_at)),
            ],
        )
    )
    out.print(render.transformations_table("Transformations", production.transformations))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        productions = client.productions.list(status=args.status, all=args.all)
    if args.json:
        emit_json([render.production_json(p) for p in productions])
    else:
        console().print(render.productions_table(productions))
    return 0


def cmd_progress(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        if not args.watch:
            progress = client.productions.progress(args.name)
            if args.json:
                emit_json(render.progress_json(progress))
            else:
                console().print(render.progress_table(progress))
            return 0
        updates = _until_final(client.productions.watch(args.name, interval=args.interval))
        last: t.Progress | None = None
        if args.json:
            for progress in updates:  # JSON Lines: one snapshot per update
                last = progress
                sys.stdout.write(dumps(render.progress_json(progress), indent=None) + "\n")
                sys.stdout.flush()
        else:
            last = _watch_table(updates)
    return WATCH_EXIT_GONE if last is None else WATCH_EXIT.get(last.status, WATCH_EXIT_GONE)


def cmd_close(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        closed = client.productions.close(args.name)
    if args.json:
        emit_json({"production": args.name, "closed": closed})
    else:
        console().print(f"closed the input of {', '.join(closed)} in {args.name}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        entries = client.productions.history(args.name)
    if args.json:
        emit_json([render.event_json(e) for e in entries])
    else:
        console().print(render.history_table(args.name, entries))
    return 0


def _until_final(updates: Iterator[t.Progress]) -> Iterator[t.Progress]:
    for progress in updates:
        yield progress
        if progress.status in FINAL_STATUSES:
            return


def _watch_table(updates: Iterator[t.Progress]) -> t.Progress | None:
    out = console()
    last: t.Progress | None = None
    if out.is_terminal:
        with Live(console=out, auto_refresh=False, transient=False) as live:
            for progress in updates:
                last = progress
                live.update(render.progress_table(progress), refresh=True)
        return last
    # Not a terminal (a log, a pipe): one line per update, the full table at the end.
    for progress in updates:
        last = progress
        stamp = datetime.now().strftime("%H:%M:%S")
        summary = render.progress_summary(progress.percent, progress.failed_percent)
        print(f"{stamp} {progress.name} {progress.status} {summary}", flush=True)
    if last is not None:
        out.print(render.progress_table(last))
    return last
