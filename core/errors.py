"""Domain errors. The gRPC layer maps each class to one status code in one table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class DomainError(Exception):
    """Base of every error the domain raises on purpose; the message is for people."""

    def __init__(self, message: str, *, details: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.message = message
        # Structured findings (e.g. validation results) that clients may show.
        self.details = tuple(details)


class InvalidArgument(DomainError):
    """Malformed input: a bad query, a malformed spec, a wrong type. Nothing was changed."""


class InvalidQuery(InvalidArgument, ValueError):
    """A metaquery, literal or schema that cannot be read. A ValueError too, as the metaquery
    API promises; any other ValueError is a bug and reaches users as an internal error."""


class NotFound(DomainError):
    """An unknown name or id."""


class AlreadyExists(DomainError):
    """A duplicate name."""


class FailedPrecondition(DomainError):
    """The request is well-formed but the current state forbids it (e.g. a status move)."""


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""


class Unauthenticated(DomainError):
    """No token, or a token that is unknown or revoked."""


class Conflict(DomainError):
    """Lost a race (a claim, a concurrent update); retrying may succeed."""


class Unavailable(DomainError):
    """The server cannot serve now (no database connection free in time, the database down);
    retrying later may succeed."""


class ResourceExhausted(DomainError):
    """A per-client quota is used up (e.g. concurrent streams); retry once some are done."""
