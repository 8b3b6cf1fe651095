"""Typed errors of the oracle client, identical for the remote and the in-process oracle.

A NAS loop must be able to tell "this candidate is invalid" (skip it) from "the server is
restarting" (retry) from "over the limits" (split the batch) without parsing messages, so every
failure is an :class:`OracleError` subclass carrying the canonical gRPC code name and the field
violations (path + reason). A bare ``grpc.RpcError`` never leaves the client, and the in-process
oracle raises the same classes for the same conditions (a ``SpecError`` becomes
:class:`InvalidArgument`), so code written against one works against the other.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class Code(str, enum.Enum):  # noqa: UP042 (StrEnum would change what str() of a member prints)
    """The canonical gRPC status codes by name (kept free of ``grpc`` so the in-process path needs none)."""

    OK = "OK"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"
    DATA_LOSS = "DATA_LOSS"
    UNAUTHENTICATED = "UNAUTHENTICATED"

    @property
    def grpc_code(self) -> Any:
        """The matching ``grpc.StatusCode`` (imports grpc)."""
        import grpc

        return grpc.StatusCode[self.value]


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: ``candidates[3].mbconv.kernel_size`` and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class OracleError(Exception):
    """Any failure of an oracle call: a canonical code, a message, and the bad fields (if any)."""

    code: Code = Code.UNKNOWN

    def __init__(self, message: str, violations: Iterable[FieldViolation] = (), *, code: Code | None = None):
        if code is not None:
            self.code = code
        self.message = message
        self.violations: tuple[FieldViolation, ...] = tuple(violations)
        super().__init__(self._text())

    def _text(self) -> str:
        if self.violations:
            return f"{self.code.value}: " + "; ".join(str(v) for v in self.violations)
        return f"{self.code.value}: {self.message}"

    @property
    def grpc_code(self) -> Any:
        return self.code.grpc_code

    def lines(self) -> list[str]:
        """One human line per bad field (or the message), as the CLI prints them."""
        if self.violations:
            return [str(v) for v in self.violations]
        return [f"{self.code.value.lower().replace('_', ' ')}: {self.message}"]


class InvalidArgument(OracleError):
    code = Code.INVALID_ARGUMENT


class ResourceExhausted(OracleError):
    code = Code.RESOURCE_EXHAUSTED


class FailedPrecondition(OracleError):
    code = Code.FAILED_PRECONDITION


class Unavailable(OracleError):
    code = Code.UNAVAILABLE


class DeadlineExceeded(OracleError):
    code = Code.DEADLINE_EXCEEDED


class Unauthenticated(OracleError):
    code = Code.UNAUTHENTICATED


class PermissionDenied(OracleError):
    code = Code.PERMISSION_DENIED


class Internal(OracleError):
    code = Code.INTERNAL


class Unimplemented(OracleError):
    code = Code.UNIMPLEMENTED


_BY_CODE: dict[Code, type[OracleError]] = {
    cls.code: cls
    for cls in (InvalidArgument, ResourceExhausted, FailedPrecondition, Unavailable, DeadlineExceeded,
                Unauthenticated, PermissionDenied, Internal, Unimplemented)
}


def error_for(code: Code | str, message: str, violations: Iterable[FieldViolation] = ()) -> OracleError:
    """The most specific :class:`OracleError` subclass for a code."""
    try:
        c = Code(code.value if isinstance(code, Code) else str(code))
    except ValueError:
        c = Code.UNKNOWN
    cls = _BY_CODE.get(c)
    if cls is None:
        return OracleError(message, violations, code=c)
    return cls(message, violations)


