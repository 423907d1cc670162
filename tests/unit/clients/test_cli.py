"""The CLI machinery: argument parsing, global options, exit codes, one-line errors, plugins."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from metaprod.clients import cli
from metaprod.clients.cli_common import parse_assignments, parse_scalar, query_argument
from metaprod.core.errors import FailedPrecondition, InvalidArgument

if TYPE_CHECKING:
    from .conftest import Fake, Server

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def invoke(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser(with_plugins=False).parse_args(list(argv))


# --- parsing -----------------------------------------------------------------------------


def test_global_options_before_and_after_the_subcommand() -> None:
    before = parse("--json", "--address", "h:1", "--token", "t", "catalog", "find", "run=1")
    after = parse("catalog", "find", "run=1", "--json", "--address", "h:1", "--token", "t")
    middle = parse("catalog", "--json", "find", "--address=h:1", "run=1", "--token=t")
    for args in (before, after, middle):
        assert (args.json, args.address, args.token, args.query) == (True, "h:1", "t", ["run=1"])
    plain = parse("catalog", "find", "run=1")
    assert (plain.json, plain.address, plain.token, plain.timeout) == (False, None, None, 30.0)


def test_leaf_options() -> None:
    args = parse("production", "stop", "muon", "--kill")
    assert (args.name, args.kill, args.action) == ("muon", True, "stop")
    args = parse("production", "progress", "muon", "--watch", "--interval", "0.5")
    assert args.watch and args.interval == 0.5
    args = parse("transformation", "reset", "p", "t", "/a", "/b")
    assert args.lfns == ["/a", "/b"]
    args = parse("transformation", "stop", "p", "t")
    assert (args.target, args.kill) == ("Stopped", False)
    args = parse("task", "log", "12", "--attempt", "2")
    assert (args.task, args.attempt) == (12, 2)
    args = parse("token", "create", "bob", "--role", "user", "--owner", "team")
    assert (args.name, args.role, args.owner) == ("bob", "user", "team")
    args = parse("catalog", "find", "datatype=raw", "run>=100", "--limit", "5")
    assert args.query == ["datatype=raw", "run>=100"] and args.limit == 5


@pytest.mark.parametrize(
    "argv",
    [
        ["catalog", "field", "add", "x", "complex"],
        ["production", "create"],
        ["task", "log", "abc"],
        ["token", "create", "bob"],
        ["nonsense"],
        ["--timeout"],
    ],
)
def test_usage_errors_exit_2(run: Run, argv: list[str]) -> None:
    code, _, err = run(*argv)
    assert code == 2
    assert "error:" in err and "Traceback" not in err


def test_group_without_subcommand_prints_usage(run: Run) -> None:
    code, _, err = run("catalog")
    assert code == 2 and "field" in err
    code, _, err = run()
    assert code == 2 and "usage: metaprod" in err


def test_help_and_version(run: Run) -> None:
    code, out, _ = run("--help")
    assert code == 0 and "production" in out
    code, out, _ = run("--version")
    assert code == 0 and out.startswith("metaprod ")


def test_command_word_and_plugin_need() -> None:
    assert cli.command_word(["--address", "catalog", "--json", "status"]) == "status"
    assert cli.command_word(["--address=h:1", "catalog"]) == "catalog"
    assert cli.command_word(["--json"]) is None
    assert not cli.needs_plugins(["--json", "catalog", "find", "x"])
    assert cli.needs_plugins(["up", "--port", "1"])
    assert cli.needs_plugins(["agents"])
    assert cli.needs_plugins([])


def test_query_argument() -> None:
    assert query_argument(['{"run": {">=": 100}}']) == '{"run": {">=": 100}}'
    assert query_argument(["site", "in", "CERN,IN2P3"]) == "site in CERN,IN2P3"
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        query_argument(['{"run": '])
    with pytest.raises(InvalidArgument):
        query_argument(["{}", "[]"])


def test_assignments_follow_the_schema() -> None:
    schema = {"run": "int", "energy": "float", "tag": "str"}
    values = parse_assignments(["run=5", "energy=3", "tag=007", "new=1.5", "other=abc"], schema)
    assert values == {"run": 5, "energy": 3.0, "tag": "007", "new": 1.5, "other": "abc"}
    assert isinstance(values["energy"], float)
    with pytest.raises(InvalidArgument, match="run"):
        parse_assignments(["run=five"], schema)
    with pytest.raises(InvalidArgument, match="KEY=VALUE"):
        parse_assignments(["run"], schema)
    assert parse_scalar("a=b", None) == "a=b"


# --- error paths -------------------------------------------------------------------------


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("metaprod: error: ")
    return lines[0]


def test_not_found_is_one_line_exit_1(run: Run, fake: Fake) -> None:
    code, out, err = run("catalog", "show", "/nope")
    assert code == 1 and out == ""
    assert one_error_line(err) == "metaprod: error: no file /nope"


def test_multiline_server_message_stays_one_line(run: Run, fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("production: p\n"))
    fake.fail("CreateProduction", grpc.StatusCode.INVALID_ARGUMENT, "2 errors:\n reco: energy clash\n cycle a->b")
    code, _, err = run("production", "create", "-f", "-", "--json")
    assert code == 1
    assert one_error_line(err) == "metaprod: error: 2 errors:; reco: energy clash; cycle a->b"


def test_unavailable_exit_3(run: Run, dead_address: str) -> None:
    code, out, err = run("--address", dead_address, "status")
    assert code == 3 and out == ""
    assert dead_address in one_error_line(err)


def test_unauthenticated_exit_1(run: Run, fake: Fake) -> None:
    fake.fail("ListTokens", grpc.StatusCode.UNAUTHENTICATED, "missing bearer token (set METAPROD_TOKEN)")
    code, _, err = run("token", "list")
    assert code == 1 and "METAPROD_TOKEN" in one_error_line(err)


def test_missing_file_is_one_line(run: Run, tmp_path) -> None:
    code, _, err = run("production", "create", "-f", str(tmp_path / "missing.yaml"))
    assert code == 1 and "missing.yaml" in one_error_line(err)


@dataclass
class FakeEntryPoint:
    name: str
    value: str
    target: Any

    def load(self) -> Any:
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


def use_plugins(monkeypatch: pytest.MonkeyPatch, *plugins: FakeEntryPoint) -> None:
    monkeypatch.setattr(cli, "plugin_entry_points", lambda: list(plugins))


def _raising(exc: BaseException) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        raise exc

    return handler


def register_hello(subparsers: Any) -> None:
    p = subparsers.add_parser("hello", help="say hello")
    p.add_argument("--name", default="world")
    p.set_defaults(handler=lambda args: print(json.dumps({"hello": args.name, "json": args.json})) or 0)
    for name, exc in {
        "fails": FailedPrecondition("schema is not at head; run metaprod db upgrade"),
        "oserror": PermissionError(13, "Permission denied", "/data/dir"),
        "crash": ZeroDivisionError("division by zero"),
        "interrupt": KeyboardInterrupt(),
        "rpc": _RpcFailure(),
    }.items():
        subparsers.add_parser(name).set_defaults(handler=_raising(exc))


class _RpcFailure(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "connection refused"


def register_agents_runner(subparsers: Any) -> None:
    p = subparsers.add_parser("agents", help="run the agents")
    p.add_argument("--data-dir", default="./metaprod-data")
    p.set_defaults(handler=lambda args: print(f"running agents in {args.data_dir}") or 0)


def test_plugins_register_commands_and_share_error_handling(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    use_plugins(
        monkeypatch,
        FakeEntryPoint("broken", "metaprod.nowhere:register", ImportError("No module named 'metaprod.nowhere'")),
        FakeEntryPoint("hello", "tests:register_hello", register_hello),
        FakeEntryPoint("notcallable", "tests:CONSTANT", 42),
    )
    code, out, err = run("hello", "--name", "ada", "--json")
    assert code == 0 and json.loads(out) == {"hello": "ada", "json": True}
    warnings = err.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("metaprod: warning: command plugin") for w in warnings)
    assert "broken" in warnings[0] and "notcallable" in warnings[1]

    expected = {
        "fails": (1, "metaprod: error: schema is not at head; run metaprod db upgrade"),
        "oserror": (1, "metaprod: error: Permission denied: /data/dir"),
        "crash": (1, "metaprod: error: internal error: ZeroDivisionError: division by zero"),
        "rpc": (3, "metaprod: error: cannot reach the metaprod services: connection refused"),
    }
    for command, (want_code, want_line) in expected.items():
        code, _, err = run(command)
        assert code == want_code
        assert err.strip().splitlines()[-1].startswith(want_line), err
    code, _, err = run("interrupt")
    assert code == 130 and "Traceback" not in err


def test_builtin_commands_skip_plugins(run: Run, monkeypatch: pytest.MonkeyPatch, dead_address: str) -> None:
    use_plugins(monkeypatch, FakeEntryPoint("broken", "x:y", RuntimeError("should not load")))
    code, _, err = run("--address", dead_address, "production", "start", "muon")
    assert "warning" not in err and code == 3


def test_plugin_extends_the_agents_command(run: Run, monkeypatch: pytest.MonkeyPatch, server: Server) -> None:
    use_plugins(monkeypatch, FakeEntryPoint("agents", "metaprod.agents.cli:register", register_agents_runner))
    code, out, _ = run("agents", "--data-dir", "/srv/mp")
    assert code == 0 and out.strip() == "running agents in /srv/mp"
    code, out, _ = run("agents", "status", "--json")
    assert code == 0 and json.loads(out)[0]["name"] == "TaskAgent"
