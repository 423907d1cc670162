"""services.convert.timestamp writes what Timestamp.FromDatetime writes (naive means UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from metaprod.services.convert import timestamp


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 6, 1, 2, 3, 456789),
        datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC),
        datetime(2026, 12, 6, 7, 2, 3, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(1969, 12, 31, 23, 59, 59, 999999),
        datetime(1, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_as_from_datetime(value: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(value)
    assert timestamp(value) == expected


def test_none() -> None:
    assert timestamp(None) is None
