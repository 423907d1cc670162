"""Who may do what: principals, roles and the ownership rule (pure; tokens live in db/)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from metaprod.core.errors import PermissionDenied


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

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


# The identity the embedded system uses for itself (agents acting on their own).
SYSTEM = Principal(name="system", role=Role.ADMIN, owner="system")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


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
