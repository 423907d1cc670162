"""Property tests: the metaquery algebra against brute force over finite universes."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metaprod.core.metaquery import MetaQuery, Schema

from tests.unit.core.oracle import (
    KEYS,
    SCHEMA,
    UNIVERSE,
    files,
    oracle_empty,
    oracle_intersect_empty,
    oracle_match,
    oracle_subset,
    schemaless_queries,
    typed_queries,
    value_set,
)

PROPS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Each property runs on typed queries (schema SCHEMA) and schema-less ones.
both = st.one_of(
    typed_queries().map(lambda d: (d, SCHEMA)),
    schemaless_queries().map(lambda d: (d, None)),
)


@st.composite
def pairs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], Schema | None]:
    if draw(st.booleans()):
        return draw(typed_queries()), draw(typed_queries()), SCHEMA
    return draw(schemaless_queries()), draw(schemaless_queries()), None


@PROPS
@given(both, st.lists(files(), min_size=1, max_size=20))
def test_matches_agrees_with_brute_force(qs: tuple[dict[str, Any], Schema | None], mds: list[dict[str, Any]]) -> None:
    d, schema = qs
    q = MetaQuery.from_dict(d, schema)
    for md in mds:
        assert q.matches(md) == oracle_match(d, md, schema), (d, md)


@PROPS
@given(both)
def test_emptiness_and_witness(qs: tuple[dict[str, Any], Schema | None]) -> None:
    d, schema = qs
    q = MetaQuery.from_dict(d, schema)
    assert q.is_empty() == oracle_empty(d, schema), d
    w = q.witness()
    if q.is_empty():
        assert w is None
    else:
        assert w is not None and q.matches(w) and oracle_match(d, w, schema), (d, w)


@PROPS
@given(pairs())
def test_intersect_exact(p: tuple[dict[str, Any], dict[str, Any], Schema | None]) -> None:
    a, b, schema = p
    qa, qb = MetaQuery.from_dict(a, schema), MetaQuery.from_dict(b, schema)
    inter = qa.intersect(qb)
    assert (inter is None) == oracle_intersect_empty(a, b, schema), (a, b, inter)
    report = qa.explain_intersection(qb)
    assert report.empty == (inter is None)
    if inter is None:
        assert report.key is not None and report.witness is None
        assert report.key in report.message
        assert report.left_constraints or report.right_constraints
    else:
        w = report.witness
        assert w is not None and qa.matches(w) and qb.matches(w), (a, b, w)
        assert oracle_match(a, w, schema) and oracle_match(b, w, schema)
        # The intersection holds exactly the values both hold, key by key.
        for k in set(a) | set(b):
            both_sets = value_set(a, k, schema) & value_set(b, k, schema)
            mine = frozenset(j for j, v in enumerate(UNIVERSE[k]) if inter.matches({**w, k: v}))
            assert mine == both_sets, (a, b, k)


@PROPS
@given(pairs())
def test_is_subset_of_exact(p: tuple[dict[str, Any], dict[str, Any], Schema | None]) -> None:
    a, b, schema = p
    qa, qb = MetaQuery.from_dict(a, schema), MetaQuery.from_dict(b, schema)
    assert qa.is_subset_of(qb) == oracle_subset(a, b, schema), (a, b)
    assert qa.is_subset_of(qa)
    inter = qa.intersect(qb)
    if inter is not None:
        assert inter.is_subset_of(qa) and inter.is_subset_of(qb)


@PROPS
@given(pairs())
def test_equality_is_semantic(p: tuple[dict[str, Any], dict[str, Any], Schema | None]) -> None:
    a, b, schema = p
    qa, qb = MetaQuery.from_dict(a, schema), MetaQuery.from_dict(b, schema)
    same = (oracle_empty(a, schema) and oracle_empty(b, schema)) or (
        not oracle_empty(a, schema)
        and not oracle_empty(b, schema)
        and set(a) == set(b)
        and all(value_set(a, k, schema) == value_set(b, k, schema) for k in a)
    )
    assert (qa == qb) == same, (a, b)
    if same:
        assert hash(qa) == hash(qb)


@PROPS
@given(both)
def test_round_trips(qs: tuple[dict[str, Any], Schema | None]) -> None:
    d, schema = qs
    q = MetaQuery.from_dict(d, schema)
    canon = q.to_dict()
    assert MetaQuery.from_dict(canon, schema) == q
    assert MetaQuery.from_dict(canon, schema).to_dict() == canon
    s = q.to_string()
    assert MetaQuery.from_string(s, schema) == q, s
    if not any(c.is_full for c in q.constraints().values()):
        # Without schema a key's type comes from its literals: a key given none (`k nin []`,
        # "present with any value") needs the schema to be typed again.
        assert MetaQuery.from_string(s) == q, s
        assert eval(repr(q), {"MetaQuery": MetaQuery}) == q  # our own repr, dict form


@PROPS
@given(typed_queries(), st.lists(files(KEYS), min_size=1, max_size=10))
def test_round_trip_preserves_matching(d: dict[str, Any], mds: list[dict[str, Any]]) -> None:
    q = MetaQuery.from_dict(d, SCHEMA)
    again = MetaQuery.from_string(q.to_string(), SCHEMA)
    for md in mds:
        assert again.matches(md) == q.matches(md)


@PROPS
@given(pairs())
def test_the_validators_shortcut_agrees_with_the_intersection(
    p: tuple[dict[str, Any], dict[str, Any], Schema | None],
) -> None:
    """core.validation decides whether two queries' constraints on a key can meet without
    building their intersection when one side is a point set: the same answer, key by key."""
    from metaprod.core.constraints import intersect
    from metaprod.core.validation import _can_meet

    a, b, schema = p
    qa, qb = MetaQuery.from_dict(a, schema), MetaQuery.from_dict(b, schema)
    for k in set(a) & set(b):
        ca, cb = qa.constraint(k), qb.constraint(k)
        if ca is not None and cb is not None:
            assert _can_meet(ca, cb) == (not intersect(ca, cb).empty), (a, b, k)
            assert _can_meet(cb, ca) == (not intersect(ca, cb).empty), (a, b, k)
