"""`metaprod catalog ...`: fields, import, find, show, set-meta."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from typing import IO

from metaprod.clients import render
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


def cmd_import(args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        if args.file == "-":
            stream: IO[str] = sys.stdin
            name = "stdin"
        else:
            stream = stack.enter_context(open(args.file, encoding="utf-8"))
            name = args.file
        client = stack.enter_context(open_client(args))
        schema = {f.name: f.type for f in client.catalog.list_fields()}
        result = client.catalog.register_files(read_file_lines(stream, name, schema), batch_size=args.batch_size)
    if args.json:
        emit_json({"registered": result.registered, "attached": result.attached, "batches": result.batches})
    else:
        console().print(
            f"registered {result.registered} file(s) in {result.batches} batch(es); "
            f"{result.attached} attached to transformations"
        )
    return 0


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
