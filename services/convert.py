"""Conversions shared by the servicers: timestamps, typed metadata values, findings, tokens,
agents. Servicer methods only convert, call the domain, and convert back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from metaprod.core.errors import InvalidArgument
from metaprod.db.models import AgentHeartbeat, ApiToken
from metaprod.v1 import admin_pb2, common_pb2

MetaScalar = int | float | str


_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=UTC)


def timestamp(value: datetime | None) -> Timestamp | None:
    """As Timestamp.FromDatetime (naive means UTC), by arithmetic: three times faster, which
    counts when a listing writes thousands."""
    if value is None:
        return None
    delta = value - (_EPOCH if value.tzinfo is None else _EPOCH_UTC)
    return Timestamp(seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000)


def datetime_from_pb(value: Timestamp) -> datetime:
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):  # a request's timestamp out of the calendar: bad input
        raise InvalidArgument(f"timestamp {value.seconds}s {value.nanos}ns is out of range") from None


def meta_value_to_pb(value: MetaScalar) -> common_pb2.MetaValue:
    if isinstance(value, bool):
        raise InvalidArgument("metadata values are int, float or str, not bool")
    if isinstance(value, int):
        return common_pb2.MetaValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.MetaValue(float_value=value)
    return common_pb2.MetaValue(str_value=str(value))


def meta_value_from_pb(key: str, value: common_pb2.MetaValue) -> MetaScalar:
    kind = value.WhichOneof("kind")
    if kind is None:
        raise InvalidArgument(f"metadata value of {key!r} is empty")
    result: MetaScalar = getattr(value, kind)
    return result


def metadata_from_pb(values: Mapping[str, common_pb2.MetaValue]) -> dict[str, MetaScalar]:
    return {key: meta_value_from_pb(key, value) for key, value in values.items()}


def metadata_to_pb(values: Mapping[str, MetaScalar]) -> dict[str, common_pb2.MetaValue]:
    return {key: meta_value_to_pb(value) for key, value in values.items()}


def finding_to_pb(finding: object) -> common_pb2.Finding:
    return common_pb2.Finding(
        code=str(getattr(finding, "code", "")),
        transformations=list(getattr(finding, "transformations", ())),
        key=getattr(finding, "key", None) or "",
        message=str(getattr(finding, "message", finding)),
    )


def findings_to_pb(findings: Iterable[object]) -> list[common_pb2.Finding]:
    return [finding_to_pb(f) for f in findings]


def token_to_pb(token: ApiToken) -> admin_pb2.Token:
    return admin_pb2.Token(
        id=token.id,
        name=token.name,
        role=token.role,
        owner=token.owner,
        created_at=timestamp(token.created_at),
        revoked=token.revoked_at is not None,
        expires_at=timestamp(token.expires_at),
    )


def agent_to_pb(row: AgentHeartbeat, alive: bool) -> admin_pb2.Agent:
    return admin_pb2.Agent(
        name=row.name,
        host=row.host,
        pid=row.pid,
        started_at=timestamp(row.started_at),
        last_beat=timestamp(row.last_beat),
        last_status=row.last_status,
        alive=alive,
    )
