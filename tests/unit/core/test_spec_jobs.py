"""What a spec may ask of its jobs: output globs inside the work directory, an env: map of
plain variables (not METAPROD_*), max_output_bytes."""

from __future__ import annotations

from typing import Any

import pytest
from metaprod.core.outputs import glob_problem
from metaprod.core.spec import parse_spec, validate_spec


def spec(**settings: Any) -> dict[str, Any]:
    return {"production": "p", "transformations": [{"name": "t", "tasks": 1, "command": "true", **settings}]}


def errors(**settings: Any) -> list[str]:
    return [f.message for f in validate_spec(spec(**settings)).errors]


@pytest.mark.parametrize(
    "glob, problem",
    [
        ("/etc/host*", "absolute"),
        ("\\\\server\\x", "absolute"),
        ("C:/x", "absolute"),
        ("../*.out", "'..'"),
        ("a/../../b", "'..'"),
        ("a\\..\\b", "'..'"),
        ("*.out", ""),
        ("sub/**/*.root", ""),
        ("..hidden", ""),
    ],
)
def test_glob_problems(glob: str, problem: str) -> None:
    assert (problem in glob_problem(glob)) if problem else glob_problem(glob) == ""


def test_a_glob_that_leaves_the_work_directory_is_an_error_naming_it() -> None:
    [message] = errors(outputs=[{"glob": "../*.out"}])
    assert "outputs[0]" in message and "'../*.out'" in message and "climbs out" in message
    [message] = errors(outputs=[{"glob": "/etc/host*"}])
    assert "is absolute" in message


def test_env_is_a_map_of_plain_variables() -> None:
    parsed = parse_spec(spec(env={"GREETING": "hi", "_X1": ""}))
    assert parsed.transformations[0].env == {"GREETING": "hi", "_X1": ""}
    assert "reserved" in errors(env={"METAPROD_TASK_ID": "7"})[0]
    assert "not a variable name" in errors(env={"A-B": "x"})[0]
    assert "not a variable name" in errors(env={"1A": "x"})[0]
    assert "must be a string" in errors(env={"N": 3})[0]
    assert "must be a map" in errors(env=["A=1"])[0]


def test_max_output_bytes() -> None:
    assert parse_spec(spec(max_output_bytes=5 * 2**40)).transformations[0].max_output_bytes == 5 * 2**40
    assert parse_spec(spec()).transformations[0].max_output_bytes is None
    for bad in (0, -1, "1G", 1.5, True):
        assert "max_output_bytes must be a positive number of bytes" in errors(max_output_bytes=bad)[0]
