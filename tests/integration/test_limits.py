"""The input rules and limits at every entry, over gRPC: each refusal is INVALID_ARGUMENT with
a short one-line message, and changes nothing (docs/spec.md "Limits", docs/catalog.md)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from metaprod.clients import Client
from metaprod.core.errors import InvalidArgument
from metaprod.core.limits import MAX_ERROR_CHARS, MAX_TRANSFORMATIONS

from tests.integration.conftest import Connect
from tests.unit.core.test_limits import BOMB


def spec(production: str = "p", **transformation: Any) -> str:
    t = {"name": "gen", "command": "true", "tasks": 1, **transformation}
    return json.dumps({"production": production, "fields": {"datatype": "str"}, "transformations": [t]})


def refused(call: Any, *args: Any, match: str = "") -> str:
    with pytest.raises(InvalidArgument) as err:
        result = call(*args)
        if hasattr(result, "__next__"):
            list(result)
    message = err.value.message
    assert match in message, message
    assert len(message) <= MAX_ERROR_CHARS and "\n" not in message
    return message


@pytest.fixture
def admin(connect_as: Connect) -> Client:
    client = connect_as(None)
    client.catalog.add_field("run", "int")
    return client


def test_specs_past_a_limit_are_refused_and_nothing_is_created(admin: Client) -> None:
    refused(admin.productions.create, spec(tasks=2_147_483_647), match="up to 10000000")
    refused(admin.productions.create, spec("p\x00x"), match="bad production name")
    refused(admin.productions.create, spec(name="g\x00n"), match="bad name")
    refused(admin.productions.create, spec(command="echo \x1b[31mred"), match="control character")
    started = time.perf_counter()
    refused(admin.productions.create, "production: p\n" + BOMB, match="aliases")
    assert time.perf_counter() - started < 5
    refused(admin.productions.create, "production: " + "[" * 10_000, match="nested deeper")
    too_many = {
        "production": "many",
        "transformations": [{"name": f"t{i}", "command": "true", "tasks": 1} for i in range(MAX_TRANSFORMATIONS + 1)],
    }
    refused(admin.productions.create, json.dumps(too_many), match=f"at most {MAX_TRANSFORMATIONS}")
    assert admin.productions.list(all=True) == []


def test_eight_hundred_transformations_fit(admin: Client) -> None:
    ts = [{"name": "gen", "tasks": 1, "command": "true", "output_query": {"datatype": "sim"}}] + [
        {
            "name": f"t{i}",
            "parents": ["gen"],
            "command": "true",
            "input_query": {"datatype": "sim"},
            "output_query": {"datatype": "sim"},
        }
        for i in range(799)
    ]
    created = admin.productions.create(
        json.dumps({"production": "wide", "fields": {"datatype": "str"}, "transformations": ts})
    )
    assert len(created.production.transformations) == 800
    assert len(created.warnings) < 50  # summarised: a few examples and a count per kind
    assert any("warnings in all" in w.message for w in created.warnings)
    assert len(admin.productions.get("wide").transformations) == 800
    refused(admin.transformations.extend, "wide", "gen", 10_000_000, match="at most")


def test_names_and_lfns_are_checked_in_the_catalog_and_the_admin_service(admin: Client) -> None:
    refused(admin.catalog.add_field, "r\x00n", "int", match="bad field name")
    refused(admin.admin.create_token, "a\x00b", "reader", match="bad token name")
    for lfn in ("bad/rel", "/bad/../../etc/passwd", "/a//b", "/a\x00b"):
        refused(admin.catalog.register_files, [{"lfn": lfn}], match="bad LFN")
    assert list(admin.catalog.find("{}")) == []
    huge = "/" + "x" * 1_000_000
    message = refused(admin.catalog.get, huge, match="bad LFN")
    assert "1000001 characters" in message
    refused(admin.catalog.register_files, [{"lfn": huge}], match="bad LFN")
    refused(admin.catalog.lineage, huge, match="bad LFN")


def test_deep_or_huge_queries_are_bad_queries_not_internal_errors(admin: Client) -> None:
    refused(admin.catalog.find, '{"run":' * 5_000 + "1" + "}" * 5_000, match="nested deeper")
    refused(admin.catalog.find, "[" * 5_000, match="")
    refused(admin.catalog.find, "run=" + "1" * 70_000, match="longer than")
