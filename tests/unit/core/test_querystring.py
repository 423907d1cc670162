"""The compact string form: the README grammar, DIRAC's command-line form, round trips."""

from __future__ import annotations

from typing import Any

import pytest
from metaprod.core.metaquery import MetaQuery, Schema

S = Schema({"datatype": "str", "run": "int", "energy": "float", "site": "str", "tag": "str"})


def d(x: dict[str, Any], schema: Schema | None = None) -> MetaQuery:
    return MetaQuery.from_dict(x, schema)


def s(text: str, schema: Schema | None = None) -> MetaQuery:
    return MetaQuery.from_string(text, schema)


def test_readme_example() -> None:
    want = {"datatype": "raw", "run": {">=": 100, "<": 200}, "site": {"in": ["CERN", "IN2P3"]}}
    assert s("datatype=raw run>=100 run<200 site in CERN,IN2P3") == d(want)
    assert s("datatype=raw run>=100 run<200 site in CERN,IN2P3", S) == d(want, S)


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("site=CERN,IN2P3", {"site": {"in": ["CERN", "IN2P3"]}}),
        ("site!=A,B", {"site": {"nin": ["A", "B"]}}),
        ("site nin A,B", {"site": {"nin": ["A", "B"]}}),
        ("site not in A,B", {"site": {"nin": ["A", "B"]}}),
        ("site IN A", {"site": {"in": ["A"]}}),
        ("site in [A, B]", {"site": {"in": ["A", "B"]}}),
        ("site in []", {"site": {"in": []}}),
        ("run>=1 run<=5 run!=3", {"run": {">=": 1, "<=": 5, "!=": 3}}),
        ("run>1 run>2", {"run": {">": 2}}),  # a repeated name adds conditions
        ("run!=1 run!=2", {"run": {"nin": [1, 2]}}),
        ("run == 5", {"run": 5}),
        ("run >= 5   energy < 2.5", {"run": {">=": 5}, "energy": {"<": 2.5}}),
        ("site=CERN , RAL", {"site": ["CERN", "RAL"]}),
        ("", {}),
        ("   ", {}),
        ("x=-1.5e3", {"x": -1500.0}),
        ("x=.5", {"x": 0.5}),
    ],
)
def test_dirac_and_compact_forms(text: str, query: dict[str, Any]) -> None:
    assert s(text) == d(query)


def test_quoted_values() -> None:
    assert s('tag="a b"') == d({"tag": "a b"})
    assert s("tag='x,y'") == d({"tag": "x,y"})
    assert s('tag="a=b" site in "x y",\'z\'') == d({"tag": "a=b", "site": ["x y", "z"]})
    assert s(r'tag="say \"hi\"\\"') == d({"tag": 'say "hi"\\'})
    assert s(r'tag="\x00\u00e9\U0001F600\n"') == d({"tag": "\0é😀\n"})


def test_literal_types() -> None:
    assert s("run=5").to_dict() == {"run": 5}  # a number without schema
    assert s("tag=abc").to_dict() == {"tag": "abc"}
    assert s('tag="123"') == d({"tag": "123"})  # quoted: a string
    assert s("tag=123", S) == d({"tag": "123"}, S)  # the schema says str
    assert s("energy=5", S) == d({"energy": 5.0}, S)
    assert s("tag=inf").to_dict() == {"tag": "inf"}  # only decimal numbers are numbers
    assert s("tag=1_000").to_dict() == {"tag": "1_000"}
    assert s("run>2.5", S) == d({"run": {">=": 3}}, S)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("run", "'run'"),
        ("run 5", "'run'"),
        ("run=", "'run'"),
        ("run=5,", "'run'"),
        ("run<1,2", "'<'"),
        ("run>=1<2", "'run'"),
        ("run~5", "expected an operator"),
        ("run!5", "'run'"),
        ('tag="open', "unterminated"),
        (r'tag="\q"', "escape"),
        ("site in [A, B", "'site'"),
        ("=5", "key"),
        ("run=abc", "'run'"),
    ],
)
def test_errors(text: str, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        MetaQuery.from_string(text, S)
    assert needle in str(info.value), str(info.value)


def test_schema_errors_name_key_and_operator() -> None:
    with pytest.raises(ValueError, match=r"'run'.*'='.*not a number"):
        s("run=abc", S)
    with pytest.raises(ValueError, match=r"'nokey'.*'>'.*not declared"):
        s("nokey>3", S)
    with pytest.raises(ValueError, match=r"'run'.*'='.*not an integer"):
        s("run=2.5", S)
    with pytest.raises(ValueError, match="must be a str"):
        MetaQuery.from_string(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "query",
    [
        {"tag": "a b"},
        {"tag": "123"},
        {"tag": ""},
        {"tag": "x,y=z<>!'\""},
        {"tag": "\0\t\n"},
        {"tag": {">": "a", "<=": "b\0"}},
        {"tag": "[x]"},
        {"weird key": 1},
        {"run": {"nin": [1, 2]}, "energy": {">": 0.1, "<": 1e-05}},
        {"energy": {">=": -1e300}},
        {"tag": ["in", "nin", "not"]},
        {"site": {"in": []}},
    ],
)
def test_to_string_round_trips(query: dict[str, Any]) -> None:
    q = d(query)
    assert s(q.to_string()) == q, q.to_string()


def test_to_string_is_canonical() -> None:
    q = d({"site": ["RAL", "CERN"], "run": {"<": 200, ">=": 100}, "datatype": "raw"}, S)
    assert q.to_string() == "datatype=raw run>=100 run<=199 site in CERN,RAL"
    assert d({"tag": "123"}).to_string() == 'tag="123"'
