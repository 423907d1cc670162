"""FileRouter: exactly the queries whose `matches` is true, for random query sets and files."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metaprod.core.metaquery import MetaQuery, Schema
from metaprod.core.router import FileRouter

from tests.unit.core.oracle import SCHEMA, files, oracle_match, schemaless_queries, typed_queries

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(st.lists(typed_queries(), max_size=25), st.lists(files(), min_size=1, max_size=30))
def test_router_equals_matches_typed(dicts: list[dict[str, Any]], mds: list[dict[str, Any]]) -> None:
    queries = {n: MetaQuery.from_dict(d, SCHEMA) for n, d in enumerate(dicts)}
    router = FileRouter(queries)
    for md in mds:
        want = {n for n, d in enumerate(dicts) if oracle_match(d, md, SCHEMA)}
        assert router.route(md) == want, md
        assert want == {n for n, q in queries.items() if q.matches(md)}


@PROPS
@given(
    st.lists(st.one_of(typed_queries().map(lambda d: (d, SCHEMA)), schemaless_queries().map(lambda d: (d, None)))),
    st.lists(files(), min_size=1, max_size=30),
)
def test_router_mixed_schemas(qs: list[tuple[dict[str, Any], Schema | None]], mds: list[dict[str, Any]]) -> None:
    """Typed and schema-less queries side by side: int keys refuse floats, `num` keys take both."""
    router = FileRouter({n: MetaQuery.from_dict(d, s) for n, (d, s) in enumerate(qs)})
    for md in mds:
        assert router.route(md) == {n for n, (d, s) in enumerate(qs) if oracle_match(d, md, s)}, md


@PROPS
@given(
    st.lists(typed_queries(), min_size=1, max_size=12),
    st.lists(st.tuples(st.booleans(), st.integers(0, 11), typed_queries()), max_size=8),
    st.lists(files(), min_size=1, max_size=10),
)
def test_incremental_add_remove(
    initial: list[dict[str, Any]], changes: list[tuple[bool, int, dict[str, Any]]], mds: list[dict[str, Any]]
) -> None:
    current = {n: MetaQuery.from_dict(d, SCHEMA) for n, d in enumerate(initial)}
    router = FileRouter(dict(current))
    for add, n, d in changes:
        if add:
            current[n] = MetaQuery.from_dict(d, SCHEMA)
            router.add(n, current[n])
        elif n in current:
            del current[n]
            router.remove(n)
        for md in mds:
            assert router.route(md) == {k for k, q in current.items() if q.matches(md)}
    assert len(router) == len(current) and router.queries() == current


def test_named_cases() -> None:
    s = Schema({"datatype": "str", "run": "int", "energy": "float"})
    q = {
        "raw": MetaQuery.from_dict({"datatype": "raw"}, s),
        "raw-runs": MetaQuery.from_dict({"datatype": "raw", "run": {">=": 100, "<": 200}}, s),
        "sim": MetaQuery.from_dict({"datatype": {"in": ["sim", "simx"]}, "energy": {">": 5}}, s),
        "not-raw": MetaQuery.from_dict({"datatype": {"!=": "raw"}}, s),
        "everything": MetaQuery.from_dict({}),
        "never": MetaQuery.from_dict({"run": {"in": []}}, s),
    }
    r = FileRouter(q)
    assert r.route({"datatype": "raw", "run": 150}) == {"raw", "raw-runs", "everything"}
    assert r.route({"datatype": "raw", "run": 200}) == {"raw", "everything"}
    assert r.route({"datatype": "raw", "run": 150.0}) == {"raw", "everything"}  # an int field
    assert r.route({"datatype": "sim", "energy": 5}) == {"not-raw", "everything"}
    assert r.route({"datatype": "sim", "energy": 5.5}) == {"sim", "not-raw", "everything"}
    assert r.route({"datatype": "sim", "energy": float("nan")}) == {"not-raw", "everything"}
    assert r.route({}) == {"everything"}
    assert r.route({"datatype": True, "run": True}) == {"everything"}
    assert r.route({"datatype": ["raw"]}) == {"everything"}  # unhashable values are no trouble


def test_value_subclasses_are_routed_like_their_base() -> None:
    class Tag(str):
        pass

    class Run(int):
        pass

    s = Schema({"t": "str", "run": "int"})
    q = {1: MetaQuery.from_dict({"t": "a"}, s), 2: MetaQuery.from_dict({"t": "a", "run": {">": 3}}, s)}
    r = FileRouter(q)
    assert r.route({"t": Tag("a"), "run": Run(5)}) == {1, 2}
    assert r.route({"t": Tag("a"), "run": Run(2)}) == {1}


def test_remove_unknown_raises() -> None:
    with pytest.raises(KeyError):
        FileRouter[int]().remove(3)


def test_many_queries_fall_back_gracefully() -> None:
    """Beyond the index budget the router degrades to checking, and stays exact."""
    import random

    rng = random.Random(7)
    s = Schema({"d": "str", "run": "int", "e": "float"})
    queries = {}
    for n in range(1500):
        lo = rng.randrange(0, 10_000)
        queries[n] = MetaQuery.from_dict(
            {"d": f"t{n % 5}", "run": {">=": lo, "<": lo + rng.randrange(100, 4000)}, "e": {">": rng.uniform(0, 50)}},
            s,
        )
    r = FileRouter(queries)
    for _ in range(300):
        md = {"d": f"t{rng.randrange(6)}", "run": rng.randrange(-10, 15_000), "e": rng.uniform(0, 60)}
        assert r.route(md) == {n for n, q in queries.items() if q.matches(md)}
