"""The typed errors a client raises: the contract's one error type (``cost_oracle.contract.errors``),
named here for callers. Remote, asyncio and in-process oracles raise the same classes for the same
conditions (a ``SpecError`` becomes :class:`InvalidArgument`), so a NAS loop written against one
works against the others."""

from __future__ import annotations

from cost_oracle.contract.errors import (
    Cancelled,
    Code,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    OracleError,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    error_for,
)

__all__ = [
    "Cancelled",
    "Code",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OracleError",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "error_for",
]
