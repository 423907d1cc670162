"""Query and metadata conversion, proto <-> dataclass (no server)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from metaprod.clients import convert
from metaprod.clients import types as t
from metaprod.core.errors import InvalidArgument
from metaprod.v1 import catalog_pb2, common_pb2, production_pb2, transformation_pb2


def test_query_dict_is_sent_as_json() -> None:
    query = {"datatype": "raw", "run": {">=": 100, "<": 200}, "site": {"in": ["CERN", "IN2P3"]}}
    assert json.loads(convert.query_text(query)) == query


def test_query_string_is_passed_through() -> None:
    text = "datatype=raw run>=100 site in CERN,IN2P3"
    assert convert.query_text(text) == text


def test_empty_and_missing_query_match_everything() -> None:
    assert convert.query_text(None) == "{}"
    assert convert.query_text({}) == "{}"


@pytest.mark.parametrize("bad", [42, ["run"], {"run": {1, 2}}, {"e": math.nan}])
def test_bad_query_is_invalid_argument(bad: object) -> None:
    with pytest.raises(InvalidArgument):
        convert.query_text(bad)  # type: ignore[arg-type]


def test_spec_text_and_dict() -> None:
    assert convert.spec_text("production: p\n") == "production: p\n"
    assert json.loads(convert.spec_text({"production": "p"})) == {"production": "p"}
    with pytest.raises(InvalidArgument):
        convert.spec_text(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "kind"),
    [(7, "int_value"), (-(2**63), "int_value"), (2.5, "float_value"), (0.0, "float_value"), ("raw", "str_value")],
)
def test_meta_value_round_trip(value: t.MetaScalar, kind: str) -> None:
    msg = convert.meta_value("k", value)
    assert msg.WhichOneof("kind") == kind
    back = convert.meta_scalar(msg)
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("bad", [True, 2**63, math.inf, math.nan, None, [1], {"a": 1}, b"x"])
def test_meta_value_refuses_other_types(bad: object) -> None:
    with pytest.raises(InvalidArgument, match="'k'"):
        convert.meta_value("k", bad)


def test_unset_meta_value_is_dropped() -> None:
    values = {"a": common_pb2.MetaValue(), "b": common_pb2.MetaValue(int_value=0)}
    assert convert.metadata_from_proto(values) == {"b": 0}


def test_metadata_map_round_trip() -> None:
    md: dict[str, t.MetaScalar] = {"run": 12, "energy": 5.0, "datatype": "sim"}
    assert convert.metadata_from_proto(convert.metadata_to_proto(md)) == md


def test_file_from_mapping() -> None:
    f = convert.file_from_mapping({"lfn": "/a", "size": 3, "metadata": {"run": 1}})
    assert f == t.CatalogFile(lfn="/a", size=3, metadata={"run": 1})


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"pfn": "x"}, "lfn"),
        ({"lfn": ""}, "lfn"),
        ({"lfn": "/a", "metdata": {}}, "unknown file key"),
        ({"lfn": "/a", "size": -1}, "size"),
        ({"lfn": "/a", "size": "big"}, "size"),
        ({"lfn": "/a", "metadata": [1]}, "mapping"),
        ({"lfn": "/a", "metadata": {"ok": True}}, "/a: metadata 'ok'"),
        ({"lfn": "/a", "pfn": 3}, "strings"),
    ],
)
def test_file_from_mapping_errors(item: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        convert.file_from_mapping(item)


def test_catalog_file_to_proto_with_provenance() -> None:
    prov = t.Provenance(production="p", transformation="gen", task=3, attempt=1, inputs=("/in",))
    msg = convert.catalog_file_to_proto(t.CatalogFile(lfn="/out", metadata={"x": 1}, provenance=prov))
    assert msg.has_provenance and msg.provenance.task == 3
    assert convert.catalog_file_from_proto(msg).provenance == prov


def test_catalog_file_from_proto_without_provenance() -> None:
    msg = catalog_pb2.CatalogFile(lfn="/a", created_at=Timestamp(seconds=1_700_000_000))
    f = convert.catalog_file_from_proto(msg)
    assert f.provenance is None
    assert f.created_at == datetime.fromtimestamp(1_700_000_000, UTC)
    assert convert.catalog_file_from_proto(catalog_pb2.CatalogFile(lfn="/b")).created_at is None


def test_transformation_queries_are_decoded() -> None:
    msg = transformation_pb2.Transformation(name="reco", input_query='{"datatype": "sim"}', output_query="")
    tr = convert.transformation_from_proto(msg)
    assert tr.input_query == {"datatype": "sim"}
    assert tr.output_query is None
    assert convert.decode_json_dict("not json") is None


def test_progress_from_proto() -> None:
    msg = production_pb2.Progress(
        name="p",
        status="Active",
        percent=12.5,
        transformations=[production_pb2.TransformationProgress(name="a", files={"Unused": 2}, tasks={"Done": 1})],
    )
    progress = convert.progress_from_proto(msg)
    assert progress.transformations[0].files == {"Unused": 2}
    assert progress.percent == 12.5


IMPORT_FLOATS = frozenset({"energy"})


def test_an_import_line_becomes_its_message_in_one_pass() -> None:
    line = {"lfn": "/a", "size": 3, "metadata": {"run": 7, "energy": 5, "site": "", "x": 2.5}}
    msg = convert.import_file_to_proto(line, IMPORT_FLOATS)
    assert (msg.lfn, msg.size, msg.pfn, msg.checksum) == ("/a", 3, "", "")
    assert convert.metadata_from_proto(msg.metadata) == {"run": 7, "energy": 5.0, "site": "", "x": 2.5}
    assert msg.metadata["energy"].WhichOneof("kind") == "float_value"  # widened for a float field
    assert msg.metadata["site"].WhichOneof("kind") == "str_value"  # an empty string is still a value
    # The same message as the two-step path gives.
    item = convert.file_from_mapping(line)
    item.metadata["energy"] = 5.0
    assert msg == convert.catalog_file_to_proto(item)


@pytest.mark.parametrize(
    "line",
    [
        {"lfn": "/a", "metadata": {"run": True}},
        {"lfn": "/a", "metadata": {"run": 2**63}},
        {"lfn": "/a", "metadata": {"energy": 2**64}},
        {"lfn": "/a", "metadata": {"run": float("nan")}},
        {"lfn": "/a", "metadata": {"run": [1]}},
        {"lfn": "/a", "metadata": {"": 1}},
        {"lfn": "/a", "metadata": [1]},
        {"lfn": "/a", "size": -1},
        {"lfn": "/a", "size": True},
        {"lfn": "/a", "pfn": 3},
        {"lfn": ""},
        {"lfn": "/a", "extra": 1},
        [1],
    ],
)
def test_a_bad_import_line_gets_the_error_of_the_full_checks(line: Any) -> None:
    with pytest.raises(InvalidArgument) as fast:
        convert.import_file_to_proto(line, IMPORT_FLOATS)
    if not isinstance(line, dict):
        assert fast.value.message == "each line is a JSON object"
        return
    with pytest.raises(InvalidArgument) as full:
        convert.catalog_file_to_proto(convert.file_from_mapping(line))
    assert fast.value.message == full.value.message


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(1_765_000_000, 0), (1_765_000_000, 999), (1_765_000_000, 1_000), (1_765_000_000, 999_999_999), (-1, 5), (0, 1)],
)
def test_timestamp_as_to_datetime(seconds: int, nanos: int) -> None:
    ts = Timestamp(seconds=seconds, nanos=nanos)
    got = convert.timestamp(ts)
    assert got == ts.ToDatetime(tzinfo=UTC)
    assert got is not None and got.utcoffset() == timedelta(0)


def test_an_unset_timestamp_is_none() -> None:
    assert convert.timestamp(Timestamp()) is None
    assert convert.timestamp(None) is None
