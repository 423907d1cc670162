"""Every RPC of every service (from the service descriptors, like test_auth_matrix.py), called
with an admin token with random well-typed messages built from the message descriptors
(strings with control characters, huge strings, deeply nested JSON, alias bombs, bad LFNs,
negative and huge integers, empty messages) and with malformed bytes: the status is never
INTERNAL or UNKNOWN. A bug is never reported as bad input, and bad input never as a bug.

Hypothesis runs inside one test over one server and database (a fixed fixture, hence
`suppress_health_check=[function_scoped_fixture]`), examples bounded to stay well under a
minute per database; every method also gets a fixed sweep of the nastiest values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metaprod.v1 import admin_pb2, catalog_pb2, production_pb2, transformation_pb2

from tests.integration.conftest import Connect, RunningServer

SERVICES = [
    admin_pb2.DESCRIPTOR.services_by_name["Admin"],
    catalog_pb2.DESCRIPTOR.services_by_name["FileCatalog"],
    production_pb2.DESCRIPTOR.services_by_name["ProductionManager"],
    transformation_pb2.DESCRIPTOR.services_by_name["TransformationService"],
]
METHODS: list[MethodDescriptor] = [m for s in SERVICES for m in s.methods]
BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}

BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
SPEC = json.dumps(
    {
        "production": "fz",
        "fields": {"datatype": "str", "run": "int"},
        "transformations": [
            {"name": "gen", "tasks": 2, "command": "true", "outputs": [{"glob": "*", "metadata": {"datatype": "x"}}]}
        ],
    }
)
NASTY_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x1b[31mred\x1b[0m",
    "line\nbreak",
    "fz",
    "gen",
    "/fz/a.dat",
    "bad/rel",
    "/bad/../../etc/passwd",
    "//x",
    "/x/",
    "x" * 1_000_000,
    "/" + "y" * 2_000,
    "é" * 600,
    "[" * 5_000 + "]" * 5_000,
    '{"run":' * 3_000 + "1" + "}" * 3_000,
    '{"run": {"in": [' + ",".join(map(str, range(5_000))) + "]}}",
    "run=1",
    "run>>3",
    "{}",
    "[]",
    "null",
    BOMB,
    SPEC,
    SPEC.replace('"gen"', '"g\\u0000n"'),
    SPEC.replace('"tasks": 2', '"tasks": 2147483647'),
    json.dumps({"name": "more", "tasks": 1, "command": "true\u0000"}),
    json.dumps({"name": "more", "tasks": 10**30, "command": "true"}),
    "- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - x",
    "a: 2024-01-01",
    "a: !!binary aGVsbG8=",
    "a: !!python/object:os.system ls",
    "Active",
    "Stopped",
    "admin-not",
    "reader",
]
NASTY_INTS = [0, 1, -1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63), 10**6]
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


def _is_map(f: FieldDescriptor) -> bool:
    return f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.GetOptions().map_entry


def scalar_strategy(f: FieldDescriptor) -> st.SearchStrategy[Any]:
    if f.type == FieldDescriptor.TYPE_STRING:
        return st.one_of(TEXT, st.sampled_from(NASTY_STRINGS))
    if f.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if f.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if f.type == FieldDescriptor.TYPE_FLOAT else 64)
    if f.type == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([v.number for v in f.enum_type.values])
    lo, hi = _INT_RANGES[f.type]
    return st.one_of(st.integers(lo, hi), st.sampled_from([v for v in NASTY_INTS if lo <= v <= hi]))


def field_strategy(f: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if _is_map(f):
        key, value = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
        return st.dictionaries(scalar_strategy(key), field_strategy(value, depth + 1), max_size=3)
    one = message_strategy(f.message_type, depth + 1) if f.type == FieldDescriptor.TYPE_MESSAGE else scalar_strategy(f)
    if f.is_repeated:
        return st.lists(one, max_size=3)
    return one


def build(desc: Descriptor, values: dict[str, Any]) -> Message:
    msg: Any = message_factory.GetMessageClass(desc)()
    for name, v in values.items():
        f = desc.fields_by_name[name]
        target = getattr(msg, name) if f.type == FieldDescriptor.TYPE_MESSAGE else None
        if _is_map(f):
            for k, item in v.items():
                if isinstance(item, Message):
                    target[k].CopyFrom(item)
                else:
                    target[k] = item
        elif f.is_repeated:
            for item in v:
                if isinstance(item, Message):
                    getattr(msg, name).add().CopyFrom(item)
                else:
                    getattr(msg, name).append(item)
        elif isinstance(v, Message):
            target.CopyFrom(v)
        else:
            setattr(msg, name, v)
    return msg  # type: ignore[no-any-return]


def message_strategy(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    if depth > 3:
        return st.just(message_factory.GetMessageClass(desc)())
    fields = {f.name: field_strategy(f, depth) for f in desc.fields}
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: build(desc, values))


def filled(desc: Descriptor, text: str, number: int, depth: int = 0) -> Message:
    """Every field set: strings to `text`, integers to `number` (clamped to their type)."""
    values: dict[str, Any] = {}
    for f in desc.fields:
        if f.type == FieldDescriptor.TYPE_MESSAGE and not _is_map(f):
            if depth < 2:
                item = filled(f.message_type, text, number, depth + 1)
                values[f.name] = [item] if f.is_repeated else item
            continue
        if _is_map(f):
            continue
        if f.type == FieldDescriptor.TYPE_STRING:
            v: Any = text
        elif f.type in _INT_RANGES:
            lo, hi = _INT_RANGES[f.type]
            v = min(hi, max(lo, number))
        else:
            continue
        values[f.name] = [v] if f.is_repeated else v
    return build(desc, values)


def call(channel: grpc.Channel, method: MethodDescriptor, payload: Message | bytes, secret: str) -> grpc.StatusCode:
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_type: Any = message_factory.GetMessageClass(method.output_type)
    kwargs: dict[str, Any] = {
        "request_serializer": (lambda m: m) if isinstance(payload, bytes) else (lambda m: m.SerializeToString()),
        "response_deserializer": response_type.FromString,
    }
    metadata = (("authorization", f"Bearer {secret}"),)
    try:
        if method.client_streaming:
            channel.stream_unary(path, **kwargs)(iter([payload, payload]), metadata=metadata, timeout=30)
        elif method.server_streaming:
            stream: Any = channel.unary_stream(path, **kwargs)(payload, metadata=metadata, timeout=30)
            next(iter(stream), None)  # the first answer tells; a watch would go on
            stream.cancel()
        else:
            channel.unary_unary(path, **kwargs)(payload, metadata=metadata, timeout=30)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]
        if code in BAD:
            raise AssertionError(f"{path}: {code.name}: {(exc.details() or '')[:300]}") from None  # type: ignore[attr-defined]
        return code
    return grpc.StatusCode.OK


@pytest.fixture
def fuzz_channel(server: RunningServer, connect_as: Connect) -> Iterator[grpc.Channel]:
    admin = connect_as(None)
    admin.productions.create(SPEC)
    admin.catalog.register_files([{"lfn": "/fz/a.dat", "size": 1, "metadata": {"datatype": "x", "run": 1}}])  # type: ignore[list-item]
    with grpc.insecure_channel(server.address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]) as ch:
        yield ch


MALFORMED = [b"\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x08" + b"\xff" * 10, bytes(range(256)), b"\x12\x05ab"]


def test_fixed_sweep_of_every_rpc(server: RunningServer, fuzz_channel: grpc.Channel) -> None:
    """Every method with every nasty string in every string field, extreme integers, the
    empty message, and malformed bytes."""
    for method in METHODS:
        call(fuzz_channel, method, message_factory.GetMessageClass(method.input_type)(), server.admin_token)
        for i, text in enumerate(NASTY_STRINGS):
            number = NASTY_INTS[i % len(NASTY_INTS)]
            call(fuzz_channel, method, filled(method.input_type, text, number), server.admin_token)
        for raw in MALFORMED:
            call(fuzz_channel, method, raw, server.admin_token)


@st.composite
def requests(draw: st.DrawFn) -> tuple[MethodDescriptor, Message]:
    method = draw(st.sampled_from(METHODS))
    return method, draw(message_strategy(method.input_type))


@settings(
    max_examples=800,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests())
def test_random_messages_never_get_an_internal_error(
    server: RunningServer, fuzz_channel: grpc.Channel, request: tuple[MethodDescriptor, Message]
) -> None:
    method, message = request
    call(fuzz_channel, method, message, server.admin_token)
