"""Path patterns of `catalog watch`: captures by type, whole-path matching, one-line errors."""

from __future__ import annotations

import pytest
from metaprod.core.errors import InvalidArgument
from metaprod.core.pathpattern import PathPattern


def test_captures_typed_values_per_segment() -> None:
    p = PathPattern.parse("raw/{subject}/{run:int}_{site}.dat")
    assert p.fields == {"subject": "str", "run": "int", "site": "str"}
    assert p.match("raw/muon/0042_CERN.dat") == {"subject": "muon", "run": 42, "site": "CERN"}
    assert p.match("raw/muon/x_CERN.dat") is None  # run is not an int
    assert p.match("raw/a/b/1_CERN.dat") is None  # a capture never spans a /
    assert p.match("raw/muon/1_CERN.dat.meta.json") is None  # the whole path must match
    assert PathPattern.parse("{a}_{b}").match("x_y_z") == {"a": "x", "b": "y_z"}
    e = PathPattern.parse("e{energy:float}/*.root")
    assert e.match("e1.5e3/anything.root") == {"energy": 1500.0}
    assert e.match("e.5/x.root") == {"energy": 0.5}
    assert PathPattern.parse("{{lit}}/{k:str}+.x").match("{lit}/v+.x") == {"k": "v"}


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty"),
        ("/raw/{x}", "leading /"),
        ("raw//{x}", "empty, '.' or '..'"),
        ("../{x}", "empty, '.' or '..'"),
        ("raw/{run:long}.dat", "has type 'long'"),
        ("raw/{run", "unbalanced '{'"),
        ("raw/run}", "unbalanced '}'"),
        ("raw/{}.dat", "needs a key name"),
        ("raw/{9x}.dat", "needs a key name"),
        ("{a}/{a}", "appears twice"),
    ],
)
def test_bad_patterns_are_one_line_errors(pattern: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match="bad pattern") as err:
        PathPattern.parse(pattern)
    assert message in err.value.message and "\n" not in err.value.message


def test_keys_must_be_catalog_fields_of_a_fitting_type() -> None:
    p = PathPattern.parse("{subject}/{run:int}")
    p.check_schema({"subject": "str", "run": "float"})  # an int fits a float field
    with pytest.raises(InvalidArgument, match=r"not a catalog field: declare it first \(metaprod catalog field add"):
        p.check_schema({"run": "int"})
    with pytest.raises(InvalidArgument, match=r"the catalog field is int, write \{subject:int\}"):
        p.check_schema({"subject": "int", "run": "int"})
