"""Mask leaves (router_leaf.py): exactly the queries whose `matches` is true, for random groups
big enough to use them, directly and through a router whose index allowance is spent."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metaprod.core.metaquery import MetaQuery, Schema
from metaprod.core.router import FileRouter
from metaprod.core.router_leaf import MASK_LEAF_MIN, mask_leaf

from tests.unit.core.oracle import SCHEMA, files, oracle_match, schemaless_queries, typed_queries

PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUERIES = st.lists(
    st.one_of(typed_queries().map(lambda d: (d, SCHEMA)), schemaless_queries().map(lambda d: (d, None))),
    min_size=MASK_LEAF_MIN,
    max_size=70,  # past 64 bits: masks of several words
)


@PROPS
@given(QUERIES, st.lists(files(), min_size=1, max_size=30))
def test_mask_leaf_equals_oracle(qs: list[tuple[dict[str, Any], Schema | None]], mds: list[dict[str, Any]]) -> None:
    parsed = [MetaQuery.from_dict(d, s) for d, s in qs]
    kept = [n for n, q in enumerate(parsed) if not q.is_empty()]
    visit = mask_leaf([f"t{n}" for n in kept], [dict(parsed[n].constraints()) for n in kept])
    assert visit is not None
    for md in [*mds, {}, {"i": True, "f": float("nan"), "s": ["a"]}]:
        out: set[Any] = set()
        visit(md, out)
        assert out == {f"t{n}" for n, (d, s) in enumerate(qs) if oracle_match(d, md, s)}, md


def test_dense_router_uses_mask_leaves_and_stays_exact() -> None:
    """250 overlapping queries per data type exhaust the index allowance: the leaves are masks."""
    rng = random.Random(11)
    schema = Schema({"d": "str", "run": "int", "e": "float", "site": "str"})
    queries = {}
    for n in range(2500):
        d: dict[str, Any] = {"d": f"t{n % 10}"}
        if rng.random() < 0.8:
            lo = rng.randrange(0, 90_000)
            d["run"] = {">=": lo, "<": lo + rng.randrange(1_000, 20_000)}
        if rng.random() < 0.6:
            d["e"] = {">": round(rng.uniform(0, 80), 2)}
        if rng.random() < 0.1:
            d["site"] = {"nin": ["A", "B"]}
        queries[n] = MetaQuery.from_dict(d, schema)
    router = FileRouter(queries)
    for _ in range(400):
        md: dict[str, Any] = {"d": f"t{rng.randrange(11)}", "run": rng.randrange(-10, 100_000)}
        if rng.random() < 0.9:
            md["e"] = rng.choice([rng.uniform(0, 100), rng.randrange(0, 100)])
        if rng.random() < 0.9:
            md["site"] = rng.choice("ABCD")
        assert router.route(md) == {n for n, q in queries.items() if q.matches(md)}
