"""Large production specs, shared by bench_validate.py and the validation tests
(tests/unit/core/test_validation_scale.py): the benchmark times the spec the tests check."""

from __future__ import annotations

from typing import Any


def fan_out(n: int) -> dict[str, Any]:
    gen = {"name": "gen", "tasks": 10, "command": "true", "outputs": [{"glob": "*", "metadata": {"datatype": "sim"}}]}
    children = [
        {
            "name": f"t{i}",
            "parents": ["gen"],
            "command": "true",
            "input_query": {"datatype": "sim"},
            "outputs": [{"glob": "*", "metadata": {"datatype": "sim", "step": i}}],
        }
        for i in range(n - 1)
    ]
    return {"production": "fan-out", "fields": {"datatype": "str", "step": "int"}, "transformations": [gen, *children]}


def chain(n: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"name": "s0", "tasks": 10, "command": "true", "outputs": [{"glob": "*", "metadata": {"step": 0}}]}
    ]
    for i in range(1, n):
        steps.append(
            {
                "name": f"s{i}",
                "parents": [f"s{i - 1}"],
                "command": "true",
                "input_query": {"step": i - 1},
                "group_size": 2,
                "outputs": [{"glob": "*", "metadata": {"step": i}}],
            }
        )
    return {"production": "chain", "fields": {"step": "int"}, "transformations": steps}
