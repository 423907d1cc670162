"""What the CLI command modules share: global options, the client, output, input parsing."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import yaml
from metaprod.clients import convert
from metaprod.clients import types as t
from metaprod.clients.client import Client, connect
from metaprod.clients.tls import channel_credentials
from metaprod.core.errors import InvalidArgument
from metaprod.v1 import catalog_pb2
from rich.console import Console

if TYPE_CHECKING:
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    SubParsers: TypeAlias = argparse._SubParsersAction

Handler: TypeAlias = Callable[[argparse.Namespace], int]
DEFAULT_TIMEOUT = 30.0


# --- global options ----------------------------------------------------------------------


def add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--json/--address/--token/--tls-*/--timeout, accepted before and after the subcommand: the top
    parser holds the defaults, every subparser repeats the options with SUPPRESS defaults so
    that a value given after the subcommand wins and an absent one keeps the top's value."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")
    group.add_argument(
        "--address", default=default(None), metavar="HOST:PORT", help="services address (env METAPROD_ADDRESS)"
    )
    group.add_argument("--token", default=default(None), help="bearer token (env METAPROD_TOKEN)")
    group.add_argument(
        "--tls-ca", default=default(None), metavar="FILE", help="TLS: trust this CA (env METAPROD_TLS_CA)"
    )
    group.add_argument(
        "--tls-cert",
        default=default(None),
        metavar="FILE",
        help="TLS client certificate, with --tls-key (env METAPROD_TLS_CERT)",
    )
    group.add_argument("--tls-key", default=default(None), metavar="FILE", help="its key (env METAPROD_TLS_KEY)")
    group.add_argument(
        "--timeout",
        type=float,
        default=default(DEFAULT_TIMEOUT),
        metavar="S",
        help=f"deadline of each call in seconds (default {DEFAULT_TIMEOUT:g})",
    )


_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """ " (did you mean 'production'?)" when a choice is close to the mistyped word, else ""."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class SuggestingParser(argparse.ArgumentParser):
    """A parser whose "invalid choice" errors suggest the closest command (did you mean ...?)."""

    def error(self, message: str) -> NoReturn:
        match = _INVALID_CHOICE.search(message)
        if match:
            choices = [c.strip().strip("'") for c in match.group(2).split(",")]
            message += did_you_mean(match.group(1), choices)
        super().error(message)


class CommandParser(SuggestingParser):
    """Every subparser: global options included; a plugin may redefine one (conflicts resolve)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("conflict_handler", "resolve")
        super().__init__(*args, **kwargs)
        add_global_options(self, top=False)


def usage_handler(parser: argparse.ArgumentParser) -> Handler:
    """The handler of a command group invoked without a subcommand: usage on stderr, exit 2."""

    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return handler


def add_group(subparsers: SubParsers, name: str, help: str) -> SubParsers:
    parser = subparsers.add_parser(name, help=help, description=help)
    parser.set_defaults(handler=usage_handler(parser))
    return parser.add_subparsers(title="commands", metavar="COMMAND")


def open_client(args: argparse.Namespace) -> Client:
    credentials = channel_credentials(
        getattr(args, "tls_ca", None), getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    )
    return connect(
        getattr(args, "address", None), getattr(args, "token", None), timeout=args.timeout, credentials=credentials
    )


# --- output ------------------------------------------------------------------------------


PIPE_WIDTH = 160  # tables written to a file or a pipe are not squeezed to 80 columns


def console() -> Console:
    # markup off: LFNs, queries and log lines are data, never rich markup.
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(file=sys.stdout, markup=False, highlight=False, emoji=False, width=width)


def _json_default(value: object) -> object:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: object, *, indent: int | None = 2) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=False, default=_json_default)


def emit_json(value: object) -> None:
    sys.stdout.write(dumps(value) + "\n")
    sys.stdout.flush()


def emit_json_list(items: Iterable[object]) -> int:
    """A JSON list written one element per line as items arrive (constant memory). Nothing is
    written before the first item (or the end) arrives, so an early failure prints no "["."""
    out = sys.stdout
    iterator = iter(items)
    first = next(iterator, _END)
    if first is _END:
        out.write("[]\n")
        out.flush()
        return 0
    out.write("[\n" + dumps(first, indent=None))
    count = 1
    for item in iterator:
        out.write(",\n" + dumps(item, indent=None))
        count += 1
    out.write("\n]\n")
    out.flush()
    return count


_END = object()


def note(message: str) -> None:
    """Information for people that must not pollute stdout (e.g. beside a printed secret)."""
    print(message, file=sys.stderr)


# --- input -------------------------------------------------------------------------------


def read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8")


def load_spec(path: str) -> str:
    """The text of a YAML or JSON spec file, parsed locally first so that a broken file fails
    clearly before any call; raises InvalidArgument naming the file."""
    text = read_text(path)
    name = "stdin" if path == "-" else path
    try:
        value = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{name}: invalid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{name}: invalid YAML: {one_line(str(exc))}") from None
    if not isinstance(value, dict):
        kind = "empty" if value is None else f"a {type(value).__name__}"
        raise InvalidArgument(f"{name}: a spec is a mapping, this file is {kind}")
    return text


def query_argument(words: Iterable[str]) -> str:
    """A QUERY typed on the command line: the JSON dict form when it starts with "{", else the
    compact string form, passed through to the server (several words are joined by spaces)."""
    text = " ".join(words).strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"query is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise InvalidArgument('a JSON query is an object such as {"run": {">=": 100}}')
    return text or "{}"


def parse_scalar(text: str, field_type: str | None) -> t.MetaScalar:
    """VALUE of KEY=VALUE: by the field's declared type, else int, float or str as it reads."""
    try:
        if field_type == "int":
            return int(text)
        if field_type == "float":
            return float(text)
    except ValueError:
        raise InvalidArgument(f"{text!r} is not a valid {field_type}") from None
    if field_type == "str":
        return text
    for convert_ in (int, float):
        try:
            return convert_(text)
        except ValueError:
            pass
    return text


def parse_assignments(items: Iterable[str], schema: Mapping[str, str]) -> dict[str, t.MetaScalar]:
    out: dict[str, t.MetaScalar] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidArgument(f"expected KEY=VALUE, got {item!r}")
        try:
            out[key] = parse_scalar(value, schema.get(key))
        except InvalidArgument as exc:
            raise InvalidArgument(f"{key}: {exc.message}") from None
    return out


def coerce_to_schema(metadata: dict[str, t.MetaScalar], schema: Mapping[str, str]) -> dict[str, t.MetaScalar]:
    """Widen ints to floats for float fields (JSON writes 5.0 as 5)."""
    for key, value in metadata.items():
        if schema.get(key) == "float" and isinstance(value, int) and not isinstance(value, bool):
            metadata[key] = float(value)
    return metadata


def read_file_lines(
    stream: Iterable[str], name: str, schema: Mapping[str, str], *, first_line: int = 1
) -> Iterator[catalog_pb2.CatalogFile]:
    """Files of a JSON Lines import, validated line by line (errors name the line; the
    stream's first line is line `first_line` of the file), as messages ready to send."""
    float_keys = frozenset(key for key, ftype in schema.items() if ftype == "float")
    loads, to_proto = json.loads, convert.import_file_to_proto
    for number, line in enumerate(stream, first_line):
        if not line or line.isspace():
            continue
        try:
            item = to_proto(loads(line), float_keys)
        except json.JSONDecodeError:
            raise InvalidArgument(f"{name}:{number}: invalid JSON: {_json_error(line.strip())}") from None
        except InvalidArgument as exc:
            raise InvalidArgument(f"{name}:{number}: {exc.message}") from None
        yield item


def _json_error(text: str) -> str:
    """The decoder's message for the line without its surrounding blanks (positions as the
    user counts them)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return str(exc)
    return "not JSON"


def one_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return "; ".join(lines) if lines else message.strip()
