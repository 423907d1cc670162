"""`metaprod transformation ...` and `metaprod task show|log|retry`."""

from __future__ import annotations

import argparse
import sys

from metaprod.clients import render, render_tasks
from metaprod.clients import types as t
from metaprod.clients.cli_common import SubParsers, add_group, console, emit_json, open_client


def _ref_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("production", metavar="PROD")
    parser.add_argument("name", metavar="NAME")


def register(subparsers: SubParsers) -> None:
    trans = add_group(subparsers, "transformation", "transformations, their files and tasks")

    p = trans.add_parser("list", help="list transformations")
    p.add_argument("--production", default=None, metavar="P", help="only the transformations of P")
    p.add_argument("--status", default=None, help="only transformations in this status")
    p.set_defaults(handler=cmd_list)

    p = trans.add_parser("show", help="a transformation with its file and task counts")
    _ref_arguments(p)
    p.set_defaults(handler=cmd_show)

    p = trans.add_parser("files", help="the files of a transformation")
    _ref_arguments(p)
    p.add_argument(
        "--status",
        default=None,
        help="Unused | Assigned | Processed | Problematic | Skipped (descends from its own outputs)",
    )
    p.add_argument("--limit", type=int, default=0, metavar="N", help="at most N files (0: all)")
    p.set_defaults(handler=cmd_files)

    p = trans.add_parser("tasks", help="the tasks of a transformation")
    _ref_arguments(p)
    p.add_argument("--status", default=None, help="Created | Submitted | Running | Done | Failed | Killed")
    p.add_argument("--limit", type=int, default=0, metavar="N", help="at most N tasks (0: all)")
    p.set_defaults(handler=cmd_tasks)

    p = trans.add_parser("reset", help="put files back to Unused (default: every Problematic file)")
    _ref_arguments(p)
    p.add_argument("lfns", nargs="*", metavar="LFN")
    p.set_defaults(handler=cmd_reset)

    p = trans.add_parser("start", help="activate (or resume) a transformation")
    _ref_arguments(p)
    p.set_defaults(handler=cmd_set_status, target="Active", kill=False)
    p = trans.add_parser("stop", help="stop a transformation (--kill: kill its running tasks)")
    _ref_arguments(p)
    p.add_argument("--kill", action="store_true", help="kill running tasks")
    p.set_defaults(handler=cmd_set_status, target="Stopped")

    p = trans.add_parser("close", help="close a catalog-fed root's input: it ends once nothing is pending")
    _ref_arguments(p)
    p.set_defaults(handler=cmd_close)

    p = trans.add_parser(
        "retry", help="run Failed and Killed tasks again with a fresh attempt budget; Problematic files back to Unused"
    )
    _ref_arguments(p)
    p.add_argument("--task", type=int, action="append", default=[], metavar="ID", help="only this task (repeatable)")
    p.set_defaults(handler=cmd_retry)

    p = trans.add_parser("extend", help="give a root with a task count N more tasks")
    _ref_arguments(p)
    p.add_argument("count", type=int, metavar="N")
    p.set_defaults(handler=cmd_extend)

    p = trans.add_parser("flush", help="make tasks of the partial groups now, without waiting for the parents")
    _ref_arguments(p)
    p.set_defaults(handler=cmd_flush)

    task = add_group(subparsers, "task", "tasks")
    p = task.add_parser("show", help="a task: its attempts, inputs, outputs and saved checkpoint")
    p.add_argument("task", type=int, metavar="TASK_ID")
    p.set_defaults(handler=cmd_task_show)
    p = task.add_parser("retry", help="run a Failed or Killed task again with a fresh attempt budget")
    p.add_argument("task", type=int, metavar="TASK_ID")
    p.set_defaults(handler=cmd_task_retry)
    p = task.add_parser("log", help="the log of a task attempt")
    p.add_argument("task", type=int, metavar="TASK_ID")
    p.add_argument("--attempt", type=int, default=0, metavar="N", help="attempt number (default: the latest)")
    p.set_defaults(handler=cmd_task_log)


def cmd_list(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        items = client.transformations.list(production=args.production, status=args.status)
    if args.json:
        emit_json([render.transformation_json(tr) for tr in items])
    else:
        console().print(render.transformations_table(None, items))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        detail = client.transformations.get(args.production, args.name)
    if args.json:
        emit_json(render.transformation_detail_json(detail))
        return 0
    tr = detail.transformation
    out = console()
    out.print(
        render.key_values(
            None,
            [
                ("transformation", f"{tr.production}/{tr.name} (id {tr.id})"),
                ("status", tr.status),
                ("parents", ", ".join(tr.parents) or "-"),
                ("input query", render.query_text(tr.input_query)),
                ("output query", render.query_text(tr.output_query)),
                ("root tasks", tr.tasks or "-"),
                ("plugin", render.grouping_text(tr)),
                ("max attempts", tr.max_attempts),
                ("max runtime", f"{tr.max_runtime} s" if tr.max_runtime else "-"),
                ("input", render.input_state(tr)),
                ("backend", tr.backend or "-"),
                ("command", tr.command or "-"),
                ("created", render.when(tr.created_at)),
            ],
        )
    )
    out.print(render.counts_table("Files", detail.files, render.FILE_STATUSES))
    out.print(render.counts_table("Tasks", detail.tasks, render.TASK_STATUSES))
    return 0


def cmd_files(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        listing = client.transformations.file_listing(args.production, args.name, status=args.status, limit=args.limit)
    if args.json:  # skipped files are listed with status "Skipped"
        emit_json([render_tasks.tfile_json(f) for f in listing.files])
    else:
        console().print(render_tasks.tfiles_table(listing.files))
        if listing.skipped_files:
            console().print(render.skipped_note(listing.skipped_files))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        tasks = client.transformations.tasks(args.production, args.name, status=args.status, limit=args.limit)
    if args.json:
        emit_json([render_tasks.task_json(k) for k in tasks])
    else:
        console().print(render_tasks.tasks_table(tasks))
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        count = client.transformations.reset(args.production, args.name, args.lfns)
    if args.json:
        emit_json({"reset": count})
    else:
        console().print(f"reset {count} file(s) of {args.production}/{args.name} to Unused")
    return 0


def cmd_set_status(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        tr = client.transformations.set_status(args.production, args.name, args.target, kill=args.kill)
    if args.json:
        emit_json(render.transformation_json(tr))
    else:
        console().print(f"transformation {tr.production}/{tr.name} is {tr.status}")
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        tr = client.transformations.close(args.production, args.name)
    if args.json:
        emit_json(render.transformation_json(tr))
    else:
        console().print(f"closed the input of {tr.production}/{tr.name} (it is {tr.status})")
    return 0


def _print_retry(result: t.RetryResult, what: str, as_json: bool) -> None:
    if as_json:
        emit_json({"tasks": result.tasks, "files": result.files, "skipped": list(result.skipped)})
        return
    line = f"{what}: {result.tasks} task(s) will run again"
    if result.files:
        line += f", {result.files} Problematic file(s) back to Unused"
    if result.skipped:
        line += f"; killed task(s) {', '.join(map(str, result.skipped))} not retried: other tasks took their inputs"
    console().print(line)


def cmd_retry(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        result = client.transformations.retry(args.production, args.name, args.task)
    _print_retry(result, f"{args.production}/{args.name}", args.json)
    return 0


def cmd_task_retry(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        result = client.transformations.retry_task(args.task)
    _print_retry(result, f"task {args.task}", args.json)
    return 0


def cmd_extend(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        tr = client.transformations.extend(args.production, args.name, args.count)
    if args.json:
        emit_json(render.transformation_json(tr))
    else:
        console().print(f"{tr.production}/{tr.name} now has {tr.tasks} tasks (it is {tr.status})")
    return 0


def cmd_flush(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        made = client.transformations.flush(args.production, args.name)
    if args.json:
        emit_json({"tasks": made})
    else:
        console().print(f"flushed {args.production}/{args.name}: {made} task(s) made of its partial groups")
    return 0


def cmd_task_show(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        detail = client.transformations.task(args.task)
    if args.json:
        emit_json(render_tasks.task_detail_json(detail))
    else:
        out = console()
        for part in render_tasks.task_detail_tables(detail):
            out.print(part)
    return 0


def cmd_task_log(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        log = client.transformations.task_log(args.task, attempt=args.attempt)
    if args.json:
        emit_json({"task": log.task, "attempt": log.attempt, "log": log.log})
    else:
        sys.stdout.write(log.log if log.log.endswith("\n") or not log.log else log.log + "\n")
        sys.stdout.flush()
    return 0
