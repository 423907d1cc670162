"""Validation at scale: a fan-out of 200 transformations (39,402 undeclared links) is decided
with its warnings summarised per kind, counts exact. (How long it takes is a benchmark's
figure: bench/bench_validate.py, target under a second.)"""

from __future__ import annotations

from metaprod.core.limits import WARNINGS_LISTED_PER_KIND
from metaprod.core.spec import validate_spec
from metaprod.core.validation import SUMMARY_KEY

from bench.specs import chain, fan_out


def test_two_hundred_transformations_validate_with_summarised_warnings() -> None:
    result = validate_spec(fan_out(200))
    assert result.ok
    summaries = {w.code: w.message for w in result.warnings if w.key == SUMMARY_KEY}
    # Every child's outputs can match every other child's input: 199 * 198 pairs.
    assert summaries["undeclared_link"].startswith("39402 undeclared_link warnings in all")
    assert summaries["own_outputs"].startswith("199 own_outputs warnings in all")
    for code in summaries:
        listed = [w for w in result.warnings if w.code == code and w.key != SUMMARY_KEY]
        assert len(listed) == WARNINGS_LISTED_PER_KIND
    # Grouped by kind: each kind's examples, then its count.
    codes = [w.code for w in result.warnings]
    assert codes == sorted(codes, key=codes.index)
    first = next(w for w in result.warnings if w.code == "undeclared_link")
    assert first.transformations == ("t1", "t0") and "e.g." in first.message


def test_a_thousand_transformations_in_a_chain_list_few_warnings() -> None:
    spec = fan_out(2)
    spec["transformations"] += [
        {
            "name": f"c{i}",
            "parents": [f"c{i - 1}" if i else "t0"],
            "command": "true",
            "input_query": {"datatype": "sim"},
        }
        for i in range(998)
    ]
    result = validate_spec(spec)
    assert result.ok
    assert len(result.warnings) <= 4 * (WARNINGS_LISTED_PER_KIND + 1)


def test_a_chain_of_two_hundred_steps_linked_by_their_outputs_is_valid_without_warnings() -> None:
    result = validate_spec(chain(200))
    assert result.ok and not result.warnings, result.warnings[:3]
