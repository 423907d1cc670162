"""Production validation: graph checks, spec parsing, and the exact coverage check."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metaprod.core.coverage import uncovered_witness
from metaprod.core.errors import InvalidArgument
from metaprod.core.metaquery import MetaQuery, Schema
from metaprod.core.spec import ProductionSpec, SpecError, TransformationSpec, parse_spec, validate_spec
from metaprod.core.validation import Finding, TransformationNode, ValidationResult, validate_graph

from tests.unit.core.oracle import SCHEMA, UNIVERSE, typed_queries, value_set

S = Schema({"datatype": "str", "energy": "float", "seed": "int", "run": "int", "site": "str"})

DESIGN_SPEC: dict[str, Any] = {
    "production": "muon-study",
    "description": "free text",
    "fields": {"datatype": "str", "energy": "float", "seed": "int"},
    "transformations": [
        {
            "name": "gen",
            "tasks": 5,
            "command": "./generate.sh",
            "outputs": [{"glob": "*.sim", "metadata": {"datatype": "sim"}}],
            "output_query": {"datatype": "sim", "energy": {">=": 1, "<=": 10}},
        },
        {
            "name": "reco",
            "parents": ["gen"],
            "input_query": {"datatype": "sim", "energy": {">": 5}},
            "group_size": 2,
            "plugin": "standard",
            "max_attempts": 3,
            "backend": "local",
            "command": "./reco.sh",
            "outputs": [{"glob": "*.reco", "metadata": {"datatype": "reco"}}],
            "output_query": {"datatype": "reco"},
        },
    ],
}


def node(name: str, parents: tuple[str, ...] = (), inq: Any = None, outq: Any = None, **kw: Any) -> TransformationNode:
    return TransformationNode(
        name,
        parents,
        None if inq is None else MetaQuery.parse(inq, S),
        None if outq is None else MetaQuery.parse(outq, S),
        **kw,
    )


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


# -- graph -------------------------------------------------------------------------------------
def test_design_example_is_valid() -> None:
    res = validate_spec(DESIGN_SPEC)
    assert res.ok and not res.errors
    # energy in (10, inf) matches reco's input but no output of gen: reported, accepted.
    assert codes(res.warnings) == ["coverage_gap"]
    assert "'reco'" in res.warnings[0].message and "'gen'" in res.warnings[0].message


def test_empty_link_names_both_transformations_the_key_and_both_constraints() -> None:
    res = validate_graph(
        [node("gen", outq="datatype=sim energy<=10", tasks=1), node("reco", ("gen",), "datatype=sim energy>20")], S
    )
    (f,) = res.errors
    assert f.code == "empty_link" and f.transformations == ("gen", "reco") and f.key == "energy"
    for part in ("'gen'", "'reco'", "'energy'", "energy<=10", "energy>20"):
        assert part in f.message, f.message
    assert not res.ok


def test_dirac_examples_are_linked_exactly() -> None:
    linked = validate_graph([node("a", outq={"run": [1, 2]}, tasks=1), node("b", ("a",), {"run": [2, 3]})], S)
    assert linked.ok
    unlinked = validate_graph([node("a", outq={"run": [1, 2]}, tasks=1), node("b", ("a",), {"run": [3]})], S)
    assert codes(unlinked.errors) == ["empty_link"]
    # a child key absent from the parent's query is no reason to reject
    absent = validate_graph([node("a", outq="datatype=sim", tasks=1), node("b", ("a",), "datatype=sim run>5")], S)
    assert absent.ok


def test_structural_graph_errors() -> None:
    res = validate_graph(
        [
            node("a", ("c",), "datatype=x"),
            node("b", ("a",), "datatype=x"),
            node("c", ("b",), "datatype=x"),
            node("d", ("ghost",), "datatype=x"),
            node("e"),
            node("e", tasks=1),
            node("s", ("s",), "datatype=x"),
        ],
        S,
    )
    found = codes(res.errors)
    assert found.count("cycle") == 2 and "unknown_parent" in found
    assert "root_without_input" in found and "duplicate_name" in found
    cycle = next(f for f in res.errors if f.code == "cycle" and len(f.transformations) == 3)
    assert set(cycle.transformations) == {"a", "b", "c"} and "->" in cycle.message
    unknown = next(f for f in res.errors if f.code == "unknown_parent")
    assert unknown.transformations == ("d", "ghost") and "'ghost'" in unknown.message
    root = next(f for f in res.errors if f.code == "root_without_input")
    assert root.transformations == ("e",)


def test_output_metadata_must_satisfy_the_output_query() -> None:
    res = validate_graph(
        [node("g", outq="datatype=sim energy<=10", tasks=1, output_metadata={"datatype": "reco", "energy": 5})], S
    )
    (f,) = res.errors
    assert f.code == "output_metadata_contradicts_output_query" and f.key == "datatype"
    assert "datatype='reco'" in f.message and "datatype=sim" in f.message
    ok = validate_graph([node("g", outq="datatype=sim", tasks=1, output_metadata=({"datatype": "sim", "run": 3},))], S)
    assert ok.ok  # keys the query does not constrain are free


def test_unknown_fields_and_bad_metadata() -> None:
    res = validate_graph(
        [
            TransformationNode(
                "g",
                input_query=MetaQuery.from_dict({"nope": 1}),
                output_query=MetaQuery.from_dict({"datatype": "x"}),
                output_metadata=({"other": 1, "datatype": "x", "run": "three"},),
            )
        ],
        S,
    )
    assert sorted((f.code, f.key) for f in res.errors) == [
        ("bad_output_metadata", "run"),
        ("unknown_field", "nope"),
        ("unknown_field", "other"),
    ]


def test_unsatisfiable_queries_are_errors() -> None:
    res = validate_graph([node("g", inq={"run": {">": 5, "<": 3}})], S)
    (f,) = res.errors
    assert f.code == "unsatisfiable_query" and f.key == "run" and "run>5" in f.message


def test_undeclared_links_are_warned_once_per_direction() -> None:
    res = validate_graph(
        [
            node("gen", outq="datatype=sim", tasks=1),
            node("reco", ("gen",), "datatype=sim", "datatype=reco"),
            node("ana", ("reco",), "datatype in sim,reco", "datatype=ana"),
            node("loop", (), "datatype=loop", "datatype=loop"),  # matches its own output: data cycle
        ],
        S,
    )
    assert res.ok
    assert [(f.code, f.transformations) for f in res.warnings] == [
        ("undeclared_link", ("gen", "ana")),
        ("coverage_gap", ("ana", "reco")),  # its `sim` files come from no declared parent
        ("own_outputs", ("loop",)),
    ]
    assert "{'datatype': 'sim'}" in res.warnings[0].message


def test_coverage_by_a_union_of_parents() -> None:
    covered = validate_graph(
        [
            node("lo", outq="datatype=sim run<100", tasks=1),
            node("hi", outq="datatype=sim run>=100", tasks=1),
            node("all", ("lo", "hi"), "datatype=sim run>=0"),
        ],
        S,
    )
    assert covered.ok and covered.warnings == []
    gap = validate_graph(
        [
            node("lo", outq="datatype=sim run<100", tasks=1),
            node("hi", outq="datatype=sim run>100", tasks=1),
            node("all", ("lo", "hi"), "datatype=sim run>=0"),
        ],
        S,
    )
    (f,) = gap.warnings
    assert f.code == "coverage_gap" and f.transformations == ("all", "lo", "hi") and "'run': 100" in f.message
    # a parent constraining a key the child does not cannot cover files lacking that key
    keyed = validate_graph([node("p", outq="datatype=sim run>0", tasks=1), node("c", ("p",), "datatype=sim")], S)
    assert codes(keyed.warnings) == ["coverage_gap"]


def test_parent_without_output_query_uses_output_metadata() -> None:
    res = validate_graph(
        [
            node("g", tasks=1, output_metadata=({"datatype": "sim"}, {"datatype": "log"})),
            node("r", ("g",), "datatype=raw"),
        ],
        S,
    )
    assert codes(res.errors) == ["empty_link"] and "output metadata" in res.errors[0].message
    ok = validate_graph([node("g", tasks=1, output_metadata={"datatype": "log"}), node("r", ("g",), "datatype=log")], S)
    assert ok.ok and ok.warnings == []


def test_node_normalizes_its_fields() -> None:
    n = TransformationNode("x", ["a"], output_metadata={"k": 1})  # type: ignore[arg-type]
    assert n.parents == ("a",) and n.output_metadata == ({"k": 1},)
    assert hash(n) == hash(TransformationNode("x", ("a",), output_metadata=({"k": 1},)))


# -- exact coverage against brute force --------------------------------------------------------
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(typed_queries(), st.lists(typed_queries(), max_size=3))
def test_uncovered_witness_is_exact(child: dict[str, Any], parents: list[dict[str, Any]]) -> None:
    c = MetaQuery.from_dict(child, SCHEMA)
    ps = [MetaQuery.from_dict(p, SCHEMA) for p in parents]
    w = uncovered_witness(c, ps)
    keys = sorted(child)
    values = [[UNIVERSE[k][j] for j in sorted(value_set(child, k, SCHEMA))] for k in keys]
    gap = any(
        not any(p.matches(md) for p in ps)
        for md in (dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values))
    )
    assert (w is not None) == gap, (child, parents, w)
    if w is not None:
        assert c.matches(w) and not any(p.matches(w) for p in ps)


# -- specs -------------------------------------------------------------------------------------
def spec_with(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(DESIGN_SPEC)
    for path, value in changes.items():
        where, _, key = path.rpartition("__")
        target: Any = spec
        for part in where.split("__") if where else []:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[key]
        else:
            target[key] = value
    return spec


_DELETE = object()


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"production": _DELETE}, "production"),
        ({"transformations__0__name": _DELETE}, "name is missing"),
        ({"transformations__0__command": _DELETE}, "command"),
        ({"transformations__1__group_size": 0}, "group_size"),
        ({"transformations__1__group_size": "2"}, "group_size"),
        ({"transformations__1__plugin": "fancy"}, "plugin 'fancy'"),
        ({"transformations__1__plugin": "by_metadata"}, "group_by"),
        ({"transformations__1__plugin": "by_size"}, "max_bytes"),
        ({"transformations__1__backend": "cloud"}, "backend 'cloud'"),
        ({"transformations__0__tasks": True}, "tasks"),
        ({"transformations__1__max_attempts": -1}, "max_attempts"),
        ({"transformations__1__parents": [1]}, "parents"),
        ({"transformations__1__input_query": {"energy": {"~": 1}}}, "unknown operator '~'"),
        ({"transformations__1__input_query": "energy>abc"}, "'energy'"),
        ({"transformations__1__input_query": 5}, "input_query"),
        ({"transformations__1__outputs": [{"metadata": {}}]}, "glob"),
        ({"transformations__1__outputs": "x"}, "outputs"),
        ({"transformations__1__options": [1]}, "options"),
        ({"transformations__1__colour": "red"}, "'colour'"),
        ({"extra": 1}, "'extra'"),
        ({"fields": {"seed": "long"}}, "'seed'"),
        ({"transformations": []}, "transformations"),
        ({"transformations": [3]}, "transformations[0]"),
    ],
)
def test_malformed_specs(changes: dict[str, Any], needle: str) -> None:
    res = validate_spec(spec_with(**changes))
    assert not res.ok
    malformed = [f for f in res.errors if f.code == "malformed_spec"]
    assert malformed and any(needle in f.message for f in malformed), res.errors


def test_not_a_dict() -> None:
    res = validate_spec(["production"])  # type: ignore[arg-type]
    assert codes(res.errors) == ["malformed_spec"]


def test_fields_extend_the_existing_schema() -> None:
    existing = Schema({"energy": "int", "run": "int"})
    res = validate_spec(DESIGN_SPEC, existing)
    (f,) = [f for f in res.errors if f.code == "field_type_conflict"]
    assert f.key == "energy" and "int" in f.message and "float" in f.message
    spec = parse_spec(DESIGN_SPEC, Schema({"run": "int"}))
    assert spec.schema.to_dict() == {"datatype": "str", "energy": "float", "run": "int", "seed": "int"}
    assert spec.fields.to_dict() == {"datatype": "str", "energy": "float", "seed": "int"}


def test_unknown_query_field_in_spec() -> None:
    res = validate_spec(spec_with(transformations__1__input_query="datatype=sim colour=red"))
    assert [(f.code, f.key) for f in res.errors] == [("unknown_field", "colour")]


def test_parse_spec_gives_typed_values() -> None:
    spec = parse_spec(DESIGN_SPEC)
    assert isinstance(spec, ProductionSpec) and spec.name == "muon-study" and spec.description == "free text"
    gen, reco = spec.transformations
    assert isinstance(reco, TransformationSpec) and spec.transformation("reco") is reco
    assert gen.tasks == 5 and gen.parents == () and gen.input_query is None
    assert gen.outputs[0].glob == "*.sim" and gen.outputs[0].metadata == {"datatype": "sim"}
    assert reco.parents == ("gen",) and reco.group_size == 2 and reco.max_attempts == 3
    assert reco.plugin == "standard" and reco.backend == "local" and reco.options == {}
    assert reco.input_query == MetaQuery.from_dict({"datatype": "sim", "energy": {">": 5}}, spec.schema)
    assert [f.code for f in spec.warnings] == ["coverage_gap"]
    defaults = parse_spec(spec_with(transformations__1__max_attempts=_DELETE, transformations__1__group_size=_DELETE))
    assert defaults.transformations[1].max_attempts == 3 and defaults.transformations[1].group_size == 1
    with pytest.raises(KeyError):
        spec.transformation("nope")


def test_compact_queries_and_plugins_in_specs() -> None:
    spec = parse_spec(
        spec_with(
            transformations__1__input_query="datatype=sim energy>5",
            transformations__1__plugin="by_metadata",
            transformations__1__group_by=["seed"],
        )
    )
    assert spec.transformations[1].group_by == ("seed",)
    assert spec.transformations[1].input_query == MetaQuery.from_string("datatype=sim energy>5", spec.schema)
    res = validate_spec(spec_with(transformations__1__group_by=["nope"], transformations__1__plugin="by_metadata"))
    assert ("unknown_field", "nope") in [(f.code, f.key) for f in res.errors]
    ignored = validate_spec(spec_with(transformations__1__max_bytes=10))
    assert ignored.ok and "ignored_setting" in ignored.codes()


def test_parse_spec_raises_spec_error_with_findings() -> None:
    bad = spec_with(transformations__1__input_query={"datatype": "sim", "energy": {">": 20}})
    with pytest.raises(SpecError) as info:
        parse_spec(bad)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, InvalidArgument)
    assert [f.code for f in err.findings] == ["empty_link"] and "empty_link" in {f.code for f in err.details}
    assert "'reco'" in str(err) and isinstance(err.result, ValidationResult)


def test_result_serializes() -> None:
    res = validate_spec(spec_with(transformations__0__command=_DELETE))
    d = res.to_dict()
    assert d["ok"] is False and d["errors"][0]["code"] == "malformed_spec"
    assert d["errors"][0]["transformations"] == ["gen"]


def test_every_declared_parent_is_checked() -> None:
    res = validate_graph(
        [
            node("a", outq="datatype=a", tasks=1),
            node("b", outq="datatype=b", tasks=1),
            node("c", ("a", "b"), "datatype=c"),
        ],
        S,
    )
    assert [(f.code, f.transformations) for f in res.errors] == [
        ("empty_link", ("a", "c")),
        ("empty_link", ("b", "c")),
    ]
    assert res.warnings == []  # no coverage noise on top of the errors
