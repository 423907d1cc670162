"""The access policy (core.auth): who may grant which role, who may change which catalog
files, who may write in a production's output namespace, and token expiry parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from metaprod.core.auth import (
    Principal,
    Role,
    ensure_can_grant,
    ensure_may_write_namespace,
    ensure_owns_files,
    lfn_namespace,
    parse_expiry,
)
from metaprod.core.errors import InvalidArgument, PermissionDenied

ADMIN = Principal("root", Role.ADMIN, "admin")
ALICE = Principal("alice", Role.USER, "alice")
READER = Principal("view", Role.READER, "view")
WORKER = Principal("worker-t1-a1", Role.WORKER, "worker", token_digest="d")
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_only_an_admin_creates_tokens_and_never_above_its_role() -> None:
    for role in (Role.ADMIN, Role.USER, Role.READER):
        ensure_can_grant(ADMIN, role)
    with pytest.raises(InvalidArgument, match="worker tokens"):
        ensure_can_grant(ADMIN, Role.WORKER)
    for principal in (ALICE, READER, WORKER):
        for role in Role:
            with pytest.raises(PermissionDenied):
                ensure_can_grant(principal, role)
    with pytest.raises(PermissionDenied, match="may not create a token of role admin"):
        ensure_can_grant(ALICE, Role.ADMIN)


def test_files_are_changed_by_their_owner_or_an_admin_only() -> None:
    ensure_owns_files(ALICE, {"/a": "alice", "/b": "alice"})
    ensure_owns_files(ADMIN, {"/a": "alice", "/b": None, "/c": "bob"})
    # One foreign file refuses the lot, naming it; an ownerless (legacy) file is admin-only.
    with pytest.raises(PermissionDenied, match=r"file '/b' belongs to 'bob'.*only its owner or an admin"):
        ensure_owns_files(ALICE, {"/a": "alice", "/b": "bob"})
    with pytest.raises(PermissionDenied, match="has no owner"):
        ensure_owns_files(ALICE, {"/old": None})
    with pytest.raises(PermissionDenied, match=r"and 1 more"):
        ensure_owns_files(ALICE, {"/x": "bob", "/y": "bob"})
    for principal in (READER, WORKER):
        with pytest.raises(PermissionDenied):
            ensure_owns_files(principal, {"/r": principal.owner})


def test_a_production_namespace_is_written_by_its_tasks_only() -> None:
    held = {"bobprod2": "bob", "p@2": "alice"}
    ensure_may_write_namespace(ALICE, "/raw/1.dat", held)
    ensure_may_write_namespace(ALICE, "/bobprod2x/1.dat", held)
    ensure_may_write_namespace(ADMIN, "/bobprod2/gen/000001/out.dat", held)
    with pytest.raises(PermissionDenied, match=r"/bobprod2/ is the output namespace of production 'bobprod2'"):
        ensure_may_write_namespace(ALICE, "/bobprod2/gen/000001/out.dat", held)
    # Its owner's imports too: one could block one of its outputs.
    with pytest.raises(PermissionDenied, match="production 'p'"):
        ensure_may_write_namespace(ALICE, "/p@2/x", held)
    assert [lfn_namespace(x) for x in ("/a/b", "/a", "a/b", "//a", "/")] == ["a", "a", None, None, None]


def test_expiry_is_a_span_or_an_iso_datetime_in_the_future() -> None:
    assert parse_expiry("30d", NOW) == NOW + timedelta(days=30)
    assert parse_expiry("12h", NOW) == NOW + timedelta(hours=12)
    assert parse_expiry("90m", NOW) == NOW + timedelta(minutes=90)
    assert parse_expiry("2w", NOW) == NOW + timedelta(weeks=2)
    assert parse_expiry("2027-01-01T00:00:00", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    assert parse_expiry("2027-01-01T02:00:00+02:00", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    assert parse_expiry("2027-01-01", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    for bad, message in (
        ("soon", "bad expiry"),
        ("0d", "positive"),
        ("-1d", "bad expiry"),
        ("5y", "bad expiry"),
        ("2026-12-05T11:59:59", "not in the future"),
        ("2026-12-05T12:00:00Z", "not in the future"),
    ):
        with pytest.raises(InvalidArgument, match=message):
            parse_expiry(bad, NOW)
