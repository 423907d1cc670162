"""Who may do what: principals, roles and the ownership rule (pure; tokens live in db/)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from metaprod.core.errors import InvalidArgument, PermissionDenied


class Role(StrEnum):
    ADMIN = "admin"  # everything
    USER = "user"  # reads everything, manages what it owns, registers catalog files
    READER = "reader"  # reads everything
    WORKER = "worker"  # may only beat and report for the task attempts its token was made for


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    owner: str
    # A worker token's digest: the attempts it may speak for carry it (db/ checks).
    token_digest: str | None = None
    # When the token stops being valid (None: until revoked).
    expires_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


# The identity the embedded system uses for itself (agents acting on their own).
SYSTEM = Principal(name="system", role=Role.ADMIN, owner="system")


def new_secret() -> str:
    # The prefix names what the secret is, and keeps it from starting with "-", which a
    # command line would take for an option (`--token -x...`).
    return "mp_" + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # Tokens are random 256-bit strings, so a fast hash is enough (no password stretching).
    return hashlib.sha256(secret.encode()).hexdigest()


def ensure_can_read(principal: Principal) -> None:
    if principal.role is Role.WORKER:
        raise PermissionDenied(f"token {principal.name!r} (worker) may only report on its own task")


def ensure_can_write(principal: Principal) -> None:
    """Creating things (productions, catalog entries): admin and user."""
    if principal.role not in (Role.ADMIN, Role.USER):
        raise PermissionDenied(f"token {principal.name!r} ({principal.role}) may not change anything")


def ensure_owns(principal: Principal, owner: str, what: str) -> None:
    """A user manages what it owns; an admin manages everything."""
    ensure_can_write(principal)
    if principal.role is Role.USER and principal.owner != owner:
        raise PermissionDenied(f"{what} belongs to {owner!r}, not to {principal.owner!r}")


def ensure_owns_files(principal: Principal, owners: dict[str, str | None], what: str = "change") -> None:
    """Change or remove catalog files: an admin any; a user only files it owns (`owners`: LFN
    -> owner; None is a file without a known owner, which only an admin may touch). One
    foreign file refuses the whole request, naming it."""
    ensure_can_write(principal)
    if principal.role is Role.ADMIN:
        return
    foreign = {lfn: owner for lfn, owner in owners.items() if owner != principal.owner}
    if foreign:
        lfn, owner = min(foreign.items())
        whose = f"belongs to {owner!r}" if owner is not None else "has no owner (admin only)"
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise PermissionDenied(
            f"file {lfn!r} {whose}: {principal.owner!r} may not {what} it{more}; only its owner or an admin may"
        )


def ensure_may_write_namespace(principal: Principal, lfn: str, namespaces: dict[str, str]) -> None:
    """A production's output namespace `/<namespace>/...` is its own: a user may not import
    there (`namespaces`: namespace -> owner of the production holding it), not even the
    production's owner, since a file there could block one of its outputs. An admin may."""
    if principal.role is Role.ADMIN:
        return
    first = lfn_namespace(lfn)
    if first is not None and first in namespaces:
        raise PermissionDenied(
            f"file {lfn!r}: /{first}/ is the output namespace of production {first.split('@', 1)[0]!r}"
            f" (owner {namespaces[first]!r}); only its tasks write there"
        )


def lfn_namespace(lfn: str) -> str | None:
    """The first segment of an absolute LFN (`/a/b` -> `a`), None for any other."""
    if not lfn.startswith("/"):
        return None
    first = lfn[1:].split("/", 1)[0]
    return first or None


# Who may grant which role: a role ranks above those it may do everything of.
ROLE_RANK = {Role.WORKER: 0, Role.READER: 1, Role.USER: 2, Role.ADMIN: 3}


def ensure_can_grant(principal: Principal, role: Role) -> None:
    """Creating, listing and revoking tokens is an admin's. No token ever makes a token of a
    higher role than its own; worker tokens are made only by the agents for their attempts."""
    if ROLE_RANK[role] > ROLE_RANK[principal.role]:
        raise PermissionDenied(f"token {principal.name!r} ({principal.role}) may not create a token of role {role}")
    ensure_admin(principal)
    if role is Role.WORKER:
        raise InvalidArgument("worker tokens are made by the agents for their job attempts only")


EXPIRY_SPAN = re.compile(r"(\d+)\s*([smhdw])")
EXPIRY_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(text: str, now: datetime) -> datetime:
    """A token's expiry: a span from `now` (`90m`, `12h`, `30d`, `2w`) or an ISO-8601 date or
    datetime (UTC when it gives no zone). It must lie in the future."""
    text = text.strip()
    span = EXPIRY_SPAN.fullmatch(text)
    if span is not None:
        amount = int(span.group(1))
        if amount <= 0 or amount > 100 * 365 * 86400:
            raise InvalidArgument(f"bad expiry {text!r}: the span must be positive and under a century")
        when = now + timedelta(**{EXPIRY_UNITS[span.group(2)]: amount})
    else:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidArgument(
                f"bad expiry {text!r}: a span such as 90m, 12h, 30d, 2w or an ISO-8601 datetime"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    if when <= now:
        raise InvalidArgument(f"expiry {when.isoformat()} is not in the future")
    return when.astimezone(UTC)


def ensure_admin(principal: Principal) -> None:
    if principal.role is not Role.ADMIN:
        raise PermissionDenied(f"token {principal.name!r} ({principal.role}) is not an admin token")


def reporting_token(principal: Principal) -> str | None:
    """Who may beat and report for task attempts: an admin for any (None: no restriction), a
    worker token only for the attempts made with it (the digest those attempts must carry)."""
    if principal.role is Role.ADMIN:
        return None
    if principal.role is Role.WORKER and principal.token_digest:
        return principal.token_digest
    raise PermissionDenied(f"token {principal.name!r} ({principal.role}) may not report on task attempts")
