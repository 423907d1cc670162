"""Grouping plugins: whole groups in catalog order; partial groups only when flushed."""

from __future__ import annotations

import pytest
from metaprod.core.grouping import Candidate, GroupingParams, group_files, group_ids


def files(n: int, size: int = 10, **md: list[object]) -> list[Candidate]:
    return [Candidate(file_id=i + 1, size=size, metadata={k: v[i % len(v)] for k, v in md.items()}) for i in range(n)]


def test_standard_groups_in_order_and_holds_back_the_partial_group() -> None:
    params = GroupingParams(group_size=2)
    assert group_files("standard", files(5), params, flush=False) == [[1, 2], [3, 4]]
    assert group_files("standard", files(5), params, flush=True) == [[1, 2], [3, 4], [5]]
    assert group_ids([7, 9, 11], 5, flush=False) == []
    assert group_ids([], 3, flush=True) == []


def test_by_metadata_keeps_values_together() -> None:
    params = GroupingParams(group_size=2, group_by=("run",))
    candidates = files(6, run=[1, 2, 3])  # runs 1,2,3,1,2,3
    assert group_files("by_metadata", candidates, params, flush=False) == [[1, 4], [2, 5], [3, 6]]
    params3 = GroupingParams(group_size=3, group_by=("run",))
    assert group_files("by_metadata", candidates, params3, flush=False) == []
    assert group_files("by_metadata", candidates, params3, flush=True) == [[1, 4], [2, 5], [3, 6]]


def test_by_size_fills_up_to_max_bytes() -> None:
    params = GroupingParams(max_bytes=25)
    assert group_files("by_size", files(5, size=10), params, flush=False) == [[1, 2], [3, 4]]
    assert group_files("by_size", files(5, size=10), params, flush=True) == [[1, 2], [3, 4], [5]]
    big = [Candidate(1, 100, {}), Candidate(2, 5, {})]
    assert group_files("by_size", big, params, flush=True) == [[1], [2]]


def test_unknown_plugin_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown grouping plugin 'nope'"):
        group_files("nope", files(1), GroupingParams(), flush=True)
