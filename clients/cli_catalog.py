"""`metaprod catalog ...`: fields, import, find, show, set-meta."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from metaprod.clients import render
from metaprod.clients import types as t
from metaprod.clients.api import DEFAULT_BATCH_SIZE
from metaprod.clients.cli_common import (
    SubParsers,
    add_group,
    console,
    emit_json,
    emit_json_list,
    open_client,
    parse_assignments,
    query_argument,
    read_file_lines,
)
from metaprod.clients.watch import Watcher, check_prefix, stderr_log
from metaprod.core.errors import DomainError
from metaprod.core.pathpattern import PathPattern
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

FIELD_TYPES = ("int", "float", "str")


def register(subparsers: SubParsers) -> None:
    catalog = add_group(subparsers, "catalog", "the file catalog: metadata fields and files")

    fields = add_group(catalog, "field", "metadata fields of the catalog schema")
    p = fields.add_parser("add", help="declare a metadata field")
    p.add_argument("name")
    p.add_argument("type", choices=FIELD_TYPES)
    p.set_defaults(handler=cmd_field_add)
    p = fields.add_parser("list", help="list the metadata fields")
    p.set_defaults(handler=cmd_field_list)

    p = catalog.add_parser(
        "import",
        help="register files from JSON Lines",
        description='Register files from JSON Lines: one {"lfn", "pfn"?, "size"?, "checksum"?, "metadata"} '
        'object per line; FILE "-" reads stdin. Files are streamed in batches.',
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N")
    p.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip a line whose LFN is already catalogued with the same size, checksum and metadata "
        "(a differing one is still an error)",
    )
    p.add_argument(
        "--from-line", type=int, default=1, metavar="N", help="start at line N (resume an import that failed)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (there is none off a terminal)")
    p.set_defaults(handler=cmd_import)

    p = catalog.add_parser(
        "find",
        help="files matching a metaquery",
        description='QUERY is the JSON dict form (\'{"run": {">=": 100}}\') or the compact string form '
        "('datatype=raw run>=100 site in CERN,IN2P3'); several words are joined by spaces.",
    )
    p.add_argument("query", nargs="+", metavar="QUERY")
    p.add_argument("--limit", type=int, default=0, metavar="N", help="at most N files (0: all)")
    p.set_defaults(handler=cmd_find)

    p = catalog.add_parser("show", help="one file with its metadata and provenance")
    p.add_argument("lfn", metavar="LFN")
    p.set_defaults(handler=cmd_show)

    p = catalog.add_parser(
        "lineage",
        help="every file a file descends from, and every file descending from it",
        description="Ancestors and descendants of LFN, transitively through provenance, nearest generation "
        'first. --json: {"lfn", "ancestors": [LFN, ...], "descendants": [LFN, ...], "truncated"}.',
    )
    p.add_argument("lfn", metavar="LFN")
    p.add_argument(
        "--max-depth", type=int, default=0, metavar="N", help="walk at most N generations each way (default: 1000)"
    )
    p.set_defaults(handler=cmd_lineage)

    p = catalog.add_parser(
        "watch",
        help="keep registering the files that appear under a directory",
        description="Keep running and register each file that appears under DIR once it is complete (written "
        "and closed, size and time stable), with LFN PREFIX + its path relative to DIR, its absolute path as "
        "PFN, an adler32 checksum, and metadata from --pattern and from a <file>.meta.json sidecar (the sidecar "
        "wins). Files already catalogued identically are skipped, so a restart registers nothing twice. "
        "SIGINT or SIGTERM stops it.",
    )
    p.add_argument("dir", metavar="DIR")
    p.add_argument(
        "--pattern",
        metavar="P",
        help="path pattern relative to DIR, e.g. 'raw/{subject}/{run:int}_{site}.dat' ({key} string, {key:int}, "
        "{key:float}, * any text within a segment); a file not matching is skipped with a log line",
    )
    p.add_argument("--lfn-prefix", default="/", metavar="PREFIX", help="LFN of DIR itself (default /)")
    p.add_argument(
        "--settle", type=float, default=1.0, metavar="S", help="seconds a file must stay unchanged (default 1)"
    )
    p.add_argument(
        "--sidecar-wait",
        type=float,
        default=2.0,
        metavar="S",
        help="extra seconds a complete file without a sidecar waits for one (default 2; 0: none)",
    )
    p.add_argument(
        "--rescan", type=float, default=60.0, metavar="S", help="full rescan period, a safety net (default 60)"
    )
    p.add_argument("--batch-size", type=int, default=1000, metavar="N", help="files per registration at most")
    p.set_defaults(handler=cmd_watch)

    p = catalog.add_parser("set-meta", help="set metadata values of a file")
    p.add_argument("lfn", metavar="LFN")
    p.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    p.set_defaults(handler=cmd_set_meta)


def cmd_field_add(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        result = client.catalog.add_field(args.name, args.type)
    if args.json:
        emit_json({**render.field_json(result.field), "created": result.created})
    else:
        verb = "added field" if result.created else "field already declared:"
        console().print(f"{verb} {result.field.name} ({result.field.type})")
    return 0


def cmd_field_list(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        fields = client.catalog.list_fields()
    if args.json:
        emit_json([render.field_json(f) for f in fields])
    else:
        console().print(render.fields_table(fields))
    return 0


_DONE_NOTE = re.compile(r"\((\d+) file\(?s?\)? of (?:earlier batches|the batches sent)")


def cmd_import(args: argparse.Namespace) -> int:
    if args.from_line < 1:
        raise ValueError(f"--from-line counts from 1, not {args.from_line}")
    lines: list[int] = []  # the line number of each file sent, in order (for the resume hint)
    with ExitStack() as stack:
        if args.file == "-":
            stream: IO[str] = sys.stdin
            name = "stdin"
        else:
            stream = stack.enter_context(open(args.file, encoding="utf-8"))
            name = args.file
        client = stack.enter_context(open_client(args))
        schema = {f.name: f.type for f in client.catalog.list_fields()}
        counted = _counting_lines(stream, args.from_line, lines)
        if show_progress(args, stream):
            counted = stack.enter_context(_ProgressBar(name, os.fstat(stream.fileno()).st_size)).wrap(counted)
        files = read_file_lines(counted, name, schema, first_line=args.from_line)
        try:
            result = client.catalog.register_messages(
                files, batch_size=args.batch_size, skip_existing=args.skip_existing
            )
        except DomainError as exc:
            raise type(exc)(exc.message + _resume_hint(exc.message, lines, name), details=exc.details) from None
    _print_import(args, result)
    return 0


def _counting_lines(stream: IO[str], first: int, lines: list[int]) -> Iterator[str]:
    """The stream's lines from line `first` on (earlier ones are skipped); records the number of
    each non-blank line handed on, which is a file of the import."""
    for number, line in enumerate(stream, 1):
        if number < first:
            continue
        if line.strip():
            lines.append(number)
        yield line


def _resume_hint(message: str, lines: list[int], name: str) -> str:
    """Where to resume: the line of the first file that was not registered."""
    if not lines:
        return ""
    match = _DONE_NOTE.search(message)
    done = int(match.group(1)) if match else 0
    if done >= len(lines):
        return ""
    line = lines[done]
    return f"; resume from line {line}: catalog import {name} --from-line {line} (or rerun with --skip-existing)"


def show_progress(args: argparse.Namespace, stream: IO[str]) -> bool:
    """A progress bar only for people: a regular file, on a terminal, without --json."""
    if args.json or args.no_progress or stream is sys.stdin or not sys.stderr.isatty():
        return False
    try:
        return os.path.isfile(args.file)
    except OSError:
        return False


class _ProgressBar:
    """A rich progress bar on stderr over the bytes of the file read so far."""

    def __init__(self, name: str, total: int) -> None:
        self.progress = Progress(
            TextColumn("importing {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.task = self.progress.add_task(name, total=total)

    def __enter__(self) -> _ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def wrap(self, lines: Iterator[str]) -> Iterator[str]:
        for line in lines:
            self.progress.advance(self.task, len(line.encode("utf-8", "surrogateescape")))
            yield line


def _print_import(args: argparse.Namespace, result: t.RegisterResult) -> None:
    if args.json:
        emit_json(
            {
                "registered": result.registered,
                "skipped": result.skipped,
                "attached": result.attached,
                "batches": result.batches,
            }
        )
        return
    skipped = f", skipped {result.skipped} already catalogued" if result.skipped else ""
    console().print(
        f"registered {result.registered} file(s) in {result.batches} batch(es){skipped}; "
        f"{result.attached} attached to transformations"
    )


def cmd_find(args: argparse.Namespace) -> int:
    query = query_argument(args.query)
    with open_client(args) as client:
        files = client.catalog.find(query, limit=args.limit)
        if args.json:
            emit_json_list(render.file_json(f) for f in files)
        else:
            out = sys.stdout
            for f in files:
                out.write(render.file_line(f) + "\n")
            out.flush()
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        f = client.catalog.get(args.lfn)
    if args.json:
        emit_json(render.file_json(f))
    else:
        console().print(render.file_table(f))
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    if args.max_depth < 0:
        raise ValueError(f"--max-depth must be positive, not {args.max_depth}")
    with open_client(args) as client:
        found = client.catalog.lineage(args.lfn, max_depth=args.max_depth)
    if args.json:
        emit_json(
            {
                "lfn": found.lfn,
                "ancestors": list(found.ancestors),
                "descendants": list(found.descendants),
                "truncated": found.truncated,
            }
        )
        return 0
    lines = [f"{found.lfn}: {len(found.ancestors)} ancestor(s), {len(found.descendants)} descendant(s)"]
    for title, lfns in (("ancestors", found.ancestors), ("descendants", found.descendants)):
        if lfns:
            lines += [f"{title}:", *(f"  {lfn}" for lfn in lfns)]
    if found.truncated:
        lines.append("(stopped at the depth limit: there may be more; see --max-depth)")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    pattern = PathPattern.parse(args.pattern) if args.pattern is not None else None
    prefix = check_prefix(args.lfn_prefix)
    for name in ("settle", "sidecar_wait"):
        if not getattr(args, name) >= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be 0 or more, not {getattr(args, name)}")
    if not args.rescan > 0 or args.batch_size < 1:
        raise ValueError("--rescan must be positive and --batch-size at least 1")
    root = Path(args.dir)
    if not root.is_dir():
        raise ValueError(f"{args.dir} is not a directory")
    with open_client(args) as client:
        watcher = Watcher(
            client=client,
            root=root,
            pattern=pattern,
            lfn_prefix=prefix,
            settle=args.settle,
            sidecar_wait=args.sidecar_wait,
            rescan=args.rescan,
            batch_size=args.batch_size,
            log=stderr_log,
        )
        stats = watcher.run()
    if args.json:
        emit_json(stats.as_dict())
    else:
        stderr_log(
            f"stopped: {stats.registered} registered, {stats.skipped} already catalogued, "
            f"{stats.unmatched} not matching the pattern, {stats.failed} refused"
        )
    return 0


def cmd_set_meta(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        schema = {f.name: f.type for f in client.catalog.list_fields()}
        values = parse_assignments(args.assignments, schema)
        f = client.catalog.set_metadata(args.lfn, values)
    if args.json:
        emit_json(render.file_json(f))
    else:
        console().print(render.file_table(f))
    return 0
