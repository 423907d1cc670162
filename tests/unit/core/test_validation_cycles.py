"""Data cycles at validation: a transformation whose outputs, or a descendant's, can match its
own input query is warned about (naming the keys); those files are skipped at run time."""

from __future__ import annotations

from typing import Any

from metaprod.core.metaquery import MetaQuery, Schema
from metaprod.core.spec import validate_spec
from metaprod.core.validation import TransformationNode, validate_graph

Node = TransformationNode

S = Schema({"datatype": "str", "level": "int"})

# The two-step analysis of DIRAC's production-system examples: nothing in step 1's input query
# excludes its own outputs (metadata inheritance keeps the four keys), nor step 2's.
DIRAC_TWO_STEP: dict[str, Any] = {
    "production": "two-step",
    "fields": {
        "zenith": "int",
        "particle": "str",
        "tel_sim_prog": "str",
        "outputType": "str",
        "analysis_prog": "str",
        "data_level": "int",
    },
    "transformations": [
        {
            "name": "step1",
            "input_query": {"zenith": 20, "particle": "gamma", "tel_sim_prog": "simtel", "outputType": "Data"},
            "command": "true",
            "outputs": [{"glob": "*.dl1", "metadata": {"analysis_prog": "evndisp", "data_level": 1}}],
            "output_query": {"analysis_prog": "evndisp", "data_level": 1},
        },
        {
            "name": "step2",
            "parents": ["step1"],
            "input_query": {"analysis_prog": "evndisp", "data_level": 1, "outputType": "Data"},
            "command": "true",
            "outputs": [{"glob": "*.dl2", "metadata": {"data_level": 2}}],
            "output_query": {"data_level": 2},
        },
    ],
}


def node(name: str, parents: tuple[str, ...] = (), inq: str | None = None, outq: str | None = None) -> Node:
    def parse(q: str | None) -> MetaQuery | None:
        return None if q is None else MetaQuery.parse(q, S)

    return TransformationNode(name, parents, parse(inq), parse(outq))


def own(findings: Any) -> list[tuple[tuple[str, ...], str | None]]:
    return [(f.transformations, f.key) for f in findings if f.code == "own_outputs"]


def test_the_dirac_two_step_example_warns_for_step1_and_its_descendant() -> None:
    res = validate_spec(DIRAC_TWO_STEP)
    assert res.ok
    assert own(res.warnings) == [(("step1",), "outputType"), (("step1", "step2"), "outputType")]
    first, second = (f for f in res.warnings if f.code == "own_outputs")
    for key in ("zenith", "particle", "tel_sim_prog", "outputType"):
        assert repr(key) in first.message
    assert "would take its own outputs" in first.message and "they will be skipped" in first.message
    assert "descendant 'step2'" in second.message
    # step2's outputs matching step1's input are no undeclared link: they are skipped.
    assert "undeclared_link" not in res.codes()


def test_the_key_named_is_one_both_queries_constrain() -> None:
    res = validate_graph([node("t", (), "datatype=raw level>=0", "level=1")], S)
    ((names, key),) = own(res.warnings)
    assert names == ("t",) and key == "level"
    assert "'datatype', 'level'" in res.warnings[0].message


def test_outputs_that_cannot_match_the_input_give_no_warning() -> None:
    res = validate_graph(
        [node("a", (), "datatype=raw", "datatype=reco"), node("b", ("a",), "datatype=reco", "datatype=ana")], S
    )
    assert own(res.warnings) == []


def test_a_grandchild_feeding_its_ancestor_is_named() -> None:
    res = validate_graph(
        [
            node("a", (), "datatype in raw,ana", "datatype=reco"),
            node("b", ("a",), "datatype=reco", "datatype=merged"),
            node("c", ("b",), "datatype=merged", "datatype=ana"),
        ],
        S,
    )
    assert own(res.warnings) == [(("a", "c"), "datatype")]
    assert "undeclared_link" not in res.codes()


def test_unknown_outputs_give_no_warning() -> None:
    res = validate_graph([node("t", (), "datatype=raw")], S)
    assert own(res.warnings) == []
