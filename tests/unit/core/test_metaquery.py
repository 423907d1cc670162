"""Named cases of the metaquery algebra, DIRAC's own examples among them, and every error."""

from __future__ import annotations

import math
from typing import Any

import pytest
from metaprod.core.metaquery import IntersectionReport, MetaQuery, Schema

S = Schema({"datatype": "str", "run": "int", "energy": "float", "site": "str", "tag": "str"})


def q(d: dict[str, Any], schema: Schema | None = S) -> MetaQuery:
    return MetaQuery.from_dict(d, schema)


# -- DIRAC's ProdValidator examples, where metaprod is exact ---------------------------------
def test_overlapping_in_lists_are_linked() -> None:
    a, b = q({"run": [1, 2]}), q({"run": [2, 3]})
    assert a.intersect(b) == q({"run": 2})
    assert a.explain_intersection(b).witness == {"run": 2}


def test_disjoint_in_lists_are_not_linked() -> None:
    r = q({"run": [1, 2]}).explain_intersection(q({"run": [3, 4]}))
    assert r.empty and r.key == "run" and r.intersection is None
    assert r.left_constraints == (("in", (1, 2)),) and r.right_constraints == (("in", (3, 4)),)


def test_child_key_absent_from_parent_is_still_linked() -> None:
    parent, child = q({"datatype": "sim"}), q({"datatype": "sim", "energy": {">": 5}})
    inter = parent.intersect(child)
    assert inter == child
    assert child.is_subset_of(parent) and not parent.is_subset_of(child)


def test_equality_against_in() -> None:
    assert q({"site": "CERN"}).intersect(q({"site": ["CERN", "RAL"]})) == q({"site": "CERN"})
    assert q({"site": "FNAL"}).intersect(q({"site": {"in": ["CERN", "RAL"]}})) is None
    assert q({"site": {"in": ["CERN"]}}) == q({"site": "CERN"}) == q({"site": {"=": "CERN"}})


def test_every_operator_pair_is_decided() -> None:
    assert q({"run": {">": 5}}).intersect(q({"run": {"<": 6}})) is None  # integer gap
    assert q({"run": {">": 5}}, None).intersect(q({"run": {"<": 6}}, None)) is not None  # reals
    assert q({"run": {">=": 5}}).intersect(q({"run": {"<=": 5}})) == q({"run": 5})
    assert q({"run": {"!=": 5}}).intersect(q({"run": 5})) is None
    assert q({"run": {"nin": [1, 2]}}).intersect(q({"run": [1, 2, 3]})) == q({"run": 3})
    assert q({"site": {">": "a"}}).intersect(q({"site": {"<": "a\0"}})) is None  # adjacency
    assert q({"site": {">=": "a"}}).intersect(q({"site": {"<=": "a"}})) == q({"site": "a"})


def test_int_fields_are_discrete() -> None:
    assert q({"run": {">": 2.5}}) == q({"run": {">=": 3}})
    assert q({"run": {">": 5, "<": 6}}).is_empty()
    assert q({"run": {">=": 5, "<=": 7, "nin": [5, 6, 7]}}).is_empty()
    assert q({"run": {">=": 5, "<=": 7, "!=": 6}}) == q({"run": [5, 7]})
    assert q({"run": {"in": [5, 6, 7, 8]}}) == q({"run": {">=": 5, "<=": 8}})
    assert q({"run": {">=": 5, "<=": 7, "!=": 6}}).to_dict() == {"run": {"in": [5, 7]}}


def test_strings_are_ordered_by_code_point_with_adjacency() -> None:
    assert q({"tag": {">": "s", "<": "s\0"}}).is_empty()
    assert q({"tag": {">=": "s", "<": "s\0\0"}}) == q({"tag": ["s", "s\0"]})
    assert q({"tag": {">": "Z"}}).matches({"tag": "a"})  # "a" (97) > "Z" (90)
    assert q({"tag": {"<": "é"}}).matches({"tag": "z"})
    assert q({"tag": {">": "s", "nin": ["s\0", "s\0\0"]}}).witness() == {"tag": "s\0\0\0"}


def test_unsatisfiable_query_is_accepted_and_reported() -> None:
    e = q({"run": {">": 5, "<": 3}})
    assert e.is_empty() and e.witness() is None
    assert e.intersect(q({})) is None
    assert e == q({"run": {"in": []}}) == q({"site": {"in": []}})  # every empty query is equal
    assert not e.matches({"run": 4})
    assert e.is_subset_of(q({"site": "x"}))
    r = e.explain_intersection(q({"run": 4}))
    assert r.empty and r.key == "run" and "left query alone" in r.message
    assert set(r.left_constraints) == {(">", 5), ("<", 3)} and r.right_constraints == ()


def test_explanation_keeps_only_clashing_conditions() -> None:
    left = q({"run": {">=": 100, "<": 200, "!=": 150}, "site": "CERN"})
    right = q({"run": {">": 300}, "site": ["CERN", "RAL"]})
    r = left.explain_intersection(right)
    assert isinstance(r, IntersectionReport) and r.empty and r.key == "run"
    assert r.left_constraints == (("<", 200),) and r.right_constraints == ((">", 300),)
    assert "run<200" in r.message and "run>300" in r.message


def test_type_clash_without_schema() -> None:
    r = q({"x": "abc"}, None).explain_intersection(q({"x": {">": 5}}, None))
    assert r.empty and r.key == "x" and "string" in r.message and "number" in r.message


def test_empty_and_presence_queries() -> None:
    everything = q({})
    assert everything.matches({}) and everything.matches({"run": "anything"})
    present = q({"run": {}})
    assert present.matches({"run": 3}) and not present.matches({}) and not present.matches({"run": "3"})
    assert q({"site": {"in": []}}).is_empty()
    assert not q({"site": {"nin": []}}).is_empty()
    assert q({"run": {}}) == q({"run": {"nin": []}})


def test_missing_key_never_matches_any_operator() -> None:
    for cond in ({"!=": 3}, {"nin": [3]}, {"<": 3}, 3, [3], {}):
        assert not q({"run": cond}).matches({"site": "CERN"}), cond


def test_wrong_typed_values_never_match() -> None:
    assert not q({"run": {"!=": 3}}).matches({"run": "4"})
    assert not q({"run": {"!=": 3}}).matches({"run": 4.0})  # an int field holds ints
    assert not q({"run": {"!=": 3}}).matches({"run": True})  # bool is never a number
    assert not q({"energy": {"!=": 3}}).matches({"energy": math.nan})
    assert q({"energy": {"!=": 3}}).matches({"energy": 4})  # ints are numbers for a float field
    assert not q({"site": {"nin": ["a"]}}).matches({"site": 5})
    assert not q({"x": {"!=": 1}}, None).matches({"x": "1"})
    assert q({"x": 1}, None).matches({"x": 1.0})  # without schema numbers are reals


def test_without_schema_kinds_come_from_literals() -> None:
    assert q({"x": {">": 1, "<": 2}}, None).witness() == {"x": 1.5}
    with pytest.raises(ValueError, match=r"'x'.*in.*mixes string and number"):
        q({"x": {"in": ["a", 1]}}, None)
    with pytest.raises(ValueError, match=r"'x'"):
        q({"x": {">": 1, "!=": "a"}}, None)


def test_equality_hash_repr_and_canonical_dict() -> None:
    a = q({"run": {">=": 100, "<": 200}, "datatype": "raw"})
    b = q({"datatype": {"in": ["raw"]}, "run": {"<=": 199, ">": 99.5}})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a.to_dict() == b.to_dict() == {"datatype": "raw", "run": {">=": 100, "<=": 199}}
    assert repr(a) == "MetaQuery({'datatype': 'raw', 'run': {'>=': 100, '<=': 199}})"
    assert str(a) == "datatype=raw run>=100 run<=199"
    assert MetaQuery.from_dict(a.to_dict(), S) == a
    assert q({"energy": 5}).to_dict() == {"energy": 5.0}
    assert q({"run": 1}) != q({"run": 2}) and q({"run": 1}) != "run=1"


def test_intersection_and_subset_laws() -> None:
    a = q({"run": {">=": 100}, "datatype": "raw"})
    b = q({"run": {"<": 200}, "site": {"nin": ["RAL"]}})
    i = a.intersect(b)
    assert i is not None and i.is_subset_of(a) and i.is_subset_of(b)
    assert not a.is_subset_of(b)  # files matching a may lack `site`
    assert i == b.intersect(a) and i.matches({"run": 150, "datatype": "raw", "site": "CERN"})


def test_parse_accepts_all_forms() -> None:
    d = {"datatype": "raw", "run": {">=": 100}}
    assert MetaQuery.parse(d, S) == MetaQuery.parse("datatype=raw run>=100", S) == MetaQuery(d, S)
    assert MetaQuery.parse(MetaQuery(d, S)) == q(d)
    assert MetaQuery() == q({})


# -- errors: every message names the key and the operator -----------------------------------
@pytest.mark.parametrize(
    ("query", "key", "op"),
    [
        ({"run": {"~": 1}}, "run", "~"),
        ({"run": {"like": 1}}, "run", "like"),
        ({"site": {"in": "CERN"}}, "site", "in"),
        ({"site": {"nin": 3}}, "site", "nin"),
        ({"run": {"<": [1, 2]}}, "run", "<"),
        ({"run": {"=": [1, 2]}}, "run", "="),
        ({"run": "five"}, "run", "="),
        ({"run": {">": "5"}}, "run", ">"),
        ({"energy": {"in": [1.0, "x"]}}, "energy", "in"),
        ({"site": 123}, "site", "="),
        ({"site": {"!=": 1.5}}, "site", "!="),
        ({"run": 2.5}, "run", "="),
        ({"run": {"nin": [1, 2.5]}}, "run", "nin"),
        ({"nokey": 1}, "nokey", "="),
        ({"run": {"=": None}}, "run", "="),
        ({"run": {"=": True}}, "run", "="),
        ({"energy": {"<": math.inf}}, "energy", "<"),
        ({"energy": {"<": math.nan}}, "energy", "<"),
    ],
)
def test_invalid_queries_name_key_and_operator(query: dict[str, Any], key: str, op: str) -> None:
    with pytest.raises(ValueError) as info:
        MetaQuery.from_dict(query, S)
    assert repr(key) in str(info.value) and repr(op) in str(info.value), str(info.value)


def test_float_bounds_on_int_fields_are_allowed() -> None:
    assert q({"run": {"<": 2.5, ">=": 0.5}}) == q({"run": [1, 2]})
    assert q({"run": 5.0}) == q({"run": 5})  # an integral float is that integer


@pytest.mark.parametrize("bad", [[("run", 1)], "run=1", None, 5])
def test_non_dict_query(bad: Any) -> None:
    with pytest.raises(ValueError, match="must be a dict"):
        MetaQuery.from_dict(bad)


@pytest.mark.parametrize("key", ["", 3, None])
def test_keys_must_be_non_empty_strings(key: Any) -> None:
    with pytest.raises(ValueError, match="non-empty strings"):
        MetaQuery.from_dict({key: 1})
    with pytest.raises(ValueError, match="non-empty strings"):
        MetaQuery.from_dict({key: {}})


def test_schema_validation_and_api() -> None:
    s = Schema({"run": "int", "energy": float, "site": "str"})
    assert s.field_type("energy") == "float" and s.field_type("nope") is None
    assert list(s) == ["energy", "run", "site"] and "run" in s and len(s) == 3
    assert dict(s.items()) == s.to_dict() == {"energy": "float", "run": "int", "site": "str"}
    assert s == Schema(s.to_dict()) and hash(s) == hash(Schema(s.to_dict()))
    assert s.merged({"seed": "int"}).field_type("seed") == "int"
    with pytest.raises(ValueError, match=r"'run'.*int.*str"):
        s.merged({"run": "str"})
    for bad in ({"run": "integer"}, {"run": "bool"}, {"run": bool}, {"": "int"}, {3: "int"}):
        with pytest.raises(ValueError):
            Schema(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'run'.*'double'"):
        Schema({"run": "double"})
    with pytest.raises(ValueError):
        Schema(["run"])  # type: ignore[arg-type]
