# PYTHON_ARGCOMPLETE_OK
"""The `metaprod` command line: parser, command plugins, and the one-line error treatment.

Every command is a subparser with `set_defaults(handler=callable(args) -> int)`. Commands of
other packages (services: `up`, `serve`; agents: `agents`, `job`; db: `db`) plug in through
entry points of the group "metaprod.commands": each is a callable `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import TYPE_CHECKING, Any, Protocol, cast

import argcomplete
import grpc
import yaml
from argcomplete.shell_integration import shellcode
from metaprod.clients import cli_admin, cli_catalog, cli_production, cli_transformation
from metaprod.clients.cli_common import (
    CommandParser,
    Handler,
    SubParsers,
    SuggestingParser,
    add_global_options,
    did_you_mean,
    one_line,
    open_client,
)
from metaprod.clients.errors import ServiceUnavailable, from_rpc_error
from metaprod.core.errors import DomainError, NotFound

PLUGIN_GROUP = "metaprod.commands"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


# The built-in command modules, each with the plugin signature register(subparsers).
def register_completion(subparsers: SubParsers) -> None:
    p = subparsers.add_parser(
        "completion",
        help="print the shell completion script (bash, zsh, fish, tcsh)",
        description='Shell completion of commands and options (argcomplete): eval "$(metaprod completion bash)" '
        "in ~/.bashrc; zsh: the same with zsh; fish: metaprod completion fish | source.",
    )
    p.add_argument("shell", choices=["bash", "zsh", "fish", "tcsh"])
    p.set_defaults(handler=cmd_completion)


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(shellcode(["metaprod"], shell=args.shell))
    return 0


BUILTINS: tuple[Callable[[SubParsers], None], ...] = (
    cli_admin.register,
    cli_catalog.register,
    cli_production.register,
    cli_transformation.register,
    register_completion,
)
BUILTIN_COMMANDS = frozenset(
    {"status", "agents", "token", "catalog", "production", "transformation", "task", "completion"}
)
# Built-in command words that a plugin may extend (`agents` runs the agents; `agents status` is ours).
SHARED_COMMANDS = frozenset({"agents"})
_GLOBAL_OPTIONS_WITH_VALUE = frozenset({"--address", "--token", "--timeout"})


class EntryPointLike(Protocol):
    name: str
    value: str

    def load(self) -> Any: ...


if TYPE_CHECKING:
    _SubParsersBase = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    _SubParsersBase = argparse._SubParsersAction


class _Commands(_SubParsersBase):
    """Subcommands where adding an existing name returns the existing parser, so that a
    plugin can extend a command word (options and a default handler) instead of clashing."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        existing = self._name_parser_map.get(name)
        if existing is not None:
            return existing
        return super().add_parser(name, **kwargs)


def warn(message: str) -> None:
    print(f"metaprod: warning: {one_line(message)}", file=sys.stderr)


def fail(message: str) -> None:
    print(f"metaprod: error: {one_line(message)}", file=sys.stderr)


def plugin_entry_points() -> list[EntryPointLike]:
    return sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name)


def load_plugins(subparsers: SubParsers, plugins: Iterable[EntryPointLike] | None = None) -> list[str]:
    """Register the command plugins; a broken one costs a warning, not the CLI. Returns the
    names of the plugins that registered."""
    loaded: list[str] = []
    try:
        found = list(plugin_entry_points() if plugins is None else plugins)
    except Exception as exc:
        warn(f"cannot list command plugins: {type(exc).__name__}: {exc}")
        return loaded
    for ep in found:
        try:
            register = ep.load()
            if not callable(register):
                raise TypeError(f"{ep.value} is not callable")
            register(subparsers)
        except (Exception, SystemExit) as exc:
            warn(f"command plugin {ep.name!r} ({ep.value}) is unusable: {type(exc).__name__}: {exc}")
            continue
        loaded.append(ep.name)
    return loaded


def _version() -> str:
    try:
        return version("metaprod")
    except PackageNotFoundError:
        return "unknown"


def build_parser(
    *, with_plugins: bool = True, plugins: Iterable[EntryPointLike] | None = None
) -> argparse.ArgumentParser:
    parser = SuggestingParser(
        prog="metaprod",
        description="metaprod: data-driven production management (catalog, productions, transformations).",
        epilog="Plugged-in commands come from entry points of the group 'metaprod.commands'.",
    )
    parser.add_argument("--version", action="version", version=f"metaprod {_version()}")
    add_global_options(parser, top=True)
    subparsers = cast(
        SubParsers,
        parser.add_subparsers(title="commands", metavar="COMMAND", action=_Commands, parser_class=CommandParser),
    )
    for register in BUILTINS:
        register(subparsers)
    if with_plugins:
        load_plugins(subparsers, plugins)
    return parser


def command_word(argv: Sequence[str]) -> str | None:
    """The first positional word of the command line (the top-level command), if any."""
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word == "--":
            return None
        if word.startswith("-"):
            skip = word in _GLOBAL_OPTIONS_WITH_VALUE
            continue
        return word
    return None


def needs_plugins(argv: Sequence[str]) -> bool:
    """Plugins are loaded unless the command is a purely built-in one (keeps the CLI fast)."""
    word = command_word(argv)
    return word is None or word not in BUILTIN_COMMANDS or word in SHARED_COMMANDS


def _describe_os_error(exc: OSError) -> str:
    if exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__


def suggest_name(args: argparse.Namespace) -> str:
    """For a production or transformation command that named an unknown one: the closest
    existing name (one more call, made only on this error path; any failure of it: nothing)."""
    handler = getattr(args, "handler", None)
    module = getattr(handler, "__module__", "")
    try:
        if module == cli_production.__name__ and isinstance(getattr(args, "name", None), str):
            production, transformation = args.name, None
        elif module == cli_transformation.__name__ and isinstance(getattr(args, "production", None), str):
            production, transformation = args.production, getattr(args, "name", None)
        else:
            return ""
        with open_client(args) as client:
            productions = [p.name for p in client.productions.list()]
            if production not in productions:
                return did_you_mean(production, productions)
            if isinstance(transformation, str):
                return did_you_mean(transformation, [t.name for t in client.transformations.list(production)])
    except Exception:
        return ""
    return ""


def run_handler(handler: Handler, args: argparse.Namespace) -> int:
    """Run a command handler (built-in or plugin): failures become one line on stderr."""
    try:
        code = handler(args)
        return EXIT_OK if code is None else int(code)
    except KeyboardInterrupt:
        print("metaprod: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:
        return _exit_code(exc.code)
    except ServiceUnavailable as exc:
        fail(exc.message)
        return EXIT_UNAVAILABLE
    except DomainError as exc:
        fail(exc.message + (suggest_name(args) if isinstance(exc, NotFound) else ""))
        return EXIT_ERROR
    except grpc.RpcError as exc:
        mapped = from_rpc_error(exc, address=getattr(args, "address", None) or "")
        fail(mapped.message)
        return EXIT_UNAVAILABLE if isinstance(mapped, ServiceUnavailable) else EXIT_ERROR
    except BrokenPipeError:
        # The reader went away (`metaprod catalog find ... | head`): quietly stop.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as exc:
        fail(_describe_os_error(exc))
        return EXIT_ERROR
    except yaml.YAMLError as exc:
        fail(f"invalid YAML: {exc}")
        return EXIT_ERROR
    except ValueError as exc:  # json.JSONDecodeError included
        fail(str(exc) or type(exc).__name__)
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get("METAPROD_DEBUG"):
            traceback.print_exc()
        fail(f"internal error: {type(exc).__name__}: {exc} (set METAPROD_DEBUG=1 for a traceback)")
        return EXIT_ERROR


def _exit_code(code: object) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(with_plugins=needs_plugins(arguments))
        argcomplete.autocomplete(parser)  # answers and exits only when a shell asks for completions
        args = parser.parse_args(arguments)
    except SystemExit as exc:  # --help, --version, usage errors (2)
        return _exit_code(exc.code)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return run_handler(handler, args)


if __name__ == "__main__":
    raise SystemExit(main())
