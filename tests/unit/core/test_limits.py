"""The input rules and limits of core/limits.py and the capped YAML loader of core/specload.py."""

from __future__ import annotations

import time
from typing import Any

import pytest
from metaprod.core import limits
from metaprod.core.errors import InvalidArgument, InvalidQuery
from metaprod.core.spec import validate_spec
from metaprod.core.specload import load_spec_text

BOMB = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize("name", ["a", "A1", "muon-study", "v1.2_x", "9lives", "x" * 128])
def test_good_names(name: str) -> None:
    assert limits.check_name("production", name) == name


@pytest.mark.parametrize("name", ["", "-x", ".x", "_x", "a b", "a\x00b", "é", "x" * 129, "a/b", 3, None])
def test_bad_names(name: Any) -> None:
    with pytest.raises(InvalidArgument, match="bad production name"):
        limits.check_name("production", name)


@pytest.mark.parametrize("lfn", ["/a", "/a/b.c", "/a/.hidden", "/a/..x", "/é/ü", "/" + "x" * 699])
def test_good_lfns(lfn: str) -> None:
    assert limits.lfn_problem(lfn) is None


@pytest.mark.parametrize(
    ("lfn", "why"),
    [
        ("bad/rel", "absolute"),
        ("", "absolute"),
        ("/bad/../../etc/passwd", "normalised"),
        ("/a/./b", "normalised"),
        ("/a//b", "normalised"),
        ("/a/", "normalised"),
        ("/a/..", "normalised"),
        ("/a\x00b", "control"),
        ("/a\x1b[31m", "control"),
        ("/a ", "space"),
        ("/" + "x" * 700, "700 characters"),
        ("/" + "é" * 600, "1024 bytes"),
    ],
)
def test_bad_lfns(lfn: str, why: str) -> None:
    problem = limits.lfn_problem(lfn)
    assert problem is not None and why in problem


def test_errors_quote_only_a_short_prefix_of_a_huge_value() -> None:
    huge = "/" + "x" * 1_000_000
    with pytest.raises(InvalidArgument) as err:
        limits.check_lfn(huge)
    assert len(err.value.message) < 500 and "1000001 characters" in err.value.message
    assert len(limits.clip("y" * 10_000)) <= limits.MAX_ERROR_CHARS


@pytest.mark.parametrize("command", ["echo a\x00", "printf '\x1b[31m'", "a\rb", "a\x7f"])
def test_commands_refuse_control_characters_but_newlines_and_tabs(command: str) -> None:
    assert limits.text_problem(command, limits.MAX_COMMAND_BYTES) is not None
    assert limits.text_problem("set -e\n\techo ok", limits.MAX_COMMAND_BYTES) is None


def test_json_nesting_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidQuery, match="nested deeper"):
        limits.check_json_depth("[" * 100_000 + "]" * 100_000)
    limits.check_json_depth('{"a": {"b": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}}')  # brackets in a string
    assert limits.nesting_depth([[[]]]) == 3


def test_an_alias_bomb_is_refused_before_it_is_expanded() -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidArgument, match="aliases"):
        load_spec_text(BOMB)
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a: &a [*a]", "inside its own anchor"),
        ("[" * 10_000 + "]" * 10_000, "nested deeper"),
        ("- " * 100 + "x", "nested deeper"),
        ("a: 2024-01-01", "date"),
        ("a: !!binary aGVsbG8=", "bytes"),
        ("a: .nan", "finite"),
        ("a: \x00", "not YAML or JSON"),
        ("[1, 2]", "top level must be a mapping"),
        ("x" * (limits.MAX_SPEC_CHARS + 1), "more than the limit"),
    ],
)
def test_malformed_spec_texts(text: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        load_spec_text(text)


def test_a_small_alias_is_fine() -> None:
    spec = load_spec_text("x: &cmd ./run.sh\ny: *cmd\n")
    assert spec == {"x": "./run.sh", "y": "./run.sh"}


def spec(**transformation: Any) -> dict[str, Any]:
    return {"production": "p", "transformations": [{"name": "gen", "command": "true", "tasks": 1, **transformation}]}


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"tasks": 2**31 - 1}, "tasks must be a positive integer up to 10000000"),
        ({"name": "g\x00n"}, "bad name"),
        ({"name": "a b"}, "bad name"),
        ({"command": "true\x00"}, "control character"),
        ({"command": "x" * (limits.MAX_COMMAND_BYTES + 1)}, "longer than"),
    ],
)
def test_spec_limits(changes: dict[str, Any], match: str) -> None:
    result = validate_spec(spec(**changes))
    assert not result.ok and any(match in f.message for f in result.errors), result.errors


def test_too_many_transformations_are_refused_without_validating_them() -> None:
    many = {
        "production": "p",
        "transformations": [
            {"name": f"t{i}", "command": "true", "tasks": 1} for i in range(limits.MAX_TRANSFORMATIONS + 1)
        ],
    }
    (error,) = validate_spec(many).errors
    assert f"at most {limits.MAX_TRANSFORMATIONS}" in error.message


def test_production_names_follow_the_name_rule() -> None:
    bad = {**spec(), "production": "\x1b[31mred"}
    result = validate_spec(bad)
    assert any("bad production name" in f.message for f in result.errors)
