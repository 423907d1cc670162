"""gRPC status codes back to the domain exceptions of metaprod.core.errors (one table)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import grpc
from metaprod.core.errors import (
    AlreadyExists,
    Conflict,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)

__all__ = [
    "ERROR_FOR_STATUS",
    "DeadlineExceeded",
    "RemoteError",
    "ServiceUnavailable",
    "from_rpc_error",
]


class ServiceUnavailable(DomainError):
    """The services could not be reached (gRPC UNAVAILABLE): not running, wrong address, network."""


class DeadlineExceeded(ServiceUnavailable):
    """The services did not answer within the call's deadline (gRPC DEADLINE_EXCEEDED)."""


class RemoteError(DomainError):
    """Any other non-OK status (INTERNAL, UNIMPLEMENTED, RESOURCE_EXHAUSTED, ...)."""

    def __init__(
        self, message: str, *, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN, details: Sequence[Any] = ()
    ) -> None:
        super().__init__(message, details=details)
        self.code = code


# The one table. A status code absent here becomes a RemoteError carrying the code.
ERROR_FOR_STATUS: Mapping[grpc.StatusCode, type[DomainError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.UNAVAILABLE: ServiceUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def status_code(exc: grpc.RpcError) -> grpc.StatusCode:
    """The status code of an RpcError (UNKNOWN for the odd error object without one)."""
    code = getattr(exc, "code", None)
    if callable(code):
        value = code()
        if isinstance(value, grpc.StatusCode):
            return value
    return grpc.StatusCode.UNKNOWN


def status_details(exc: grpc.RpcError) -> str:
    details = getattr(exc, "details", None)
    if callable(details):
        value = details()
        if isinstance(value, str) and value:
            return value
    return ""


def from_rpc_error(exc: grpc.RpcError, *, address: str = "", timeout: float | None = None) -> DomainError:
    """The domain exception for a failed call, with the server's details as its message."""
    code = status_code(exc)
    details = status_details(exc)
    cls = ERROR_FOR_STATUS.get(code)
    where = f" at {address}" if address else ""
    if cls is DeadlineExceeded:
        within = f" within {timeout:g} s" if timeout else ""
        return DeadlineExceeded(f"no answer from the metaprod services{where}{within} ({details or 'deadline'})")
    if cls is ServiceUnavailable:
        return ServiceUnavailable(f"cannot reach the metaprod services{where}: {details or 'unavailable'}")
    if cls is not None:
        return cls(details or code.name.lower().replace("_", " "))
    name = code.name.lower().replace("_", " ")
    return RemoteError(f"{name}: {details}" if details else name, code=code)
