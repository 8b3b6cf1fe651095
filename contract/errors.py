"""Errors of the oracle, one class per canonical gRPC code, with field violations.

The oracle core raises these whether it runs behind gRPC or in-process, so a caller sees the same
code and the same field paths either way. ``code`` is the canonical code *name*; grpc itself is
imported only when a status is actually sent. ``to_status`` builds the ``google.rpc.Status`` that
travels in ``grpc-status-details-bin`` (and inside batch results): a ``BadRequest`` with one
``FieldViolation`` per bad field, or a ``QuotaFailure`` naming the limit that was exceeded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from cost_engine.spec.base import clip, join_path

__all__ = [
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "ServiceError",
    "Unauthenticated",
    "Unavailable",
    "error_for_code",
    "from_status",
    "invalid",
    "join_path",
    "translate_path",
]


class ServiceError(Exception):
    """A failed request (or one failed item of a batch): canonical code name, message, bad fields.

    ``violations`` are ``(field path, reason)`` pairs, paths in proto terms
    (``candidates[3].network.stages[0].blocks[1].mbconv.kernel_size``). ``quota`` names a limit
    (``max_batch_size``) for RESOURCE_EXHAUSTED.
    """

    code = "UNKNOWN"

    def __init__(self, message: str, violations: Iterable[tuple[str, str]] = (), *, quota: str | None = None):
        self.message = message
        self.violations: tuple[tuple[str, str], ...] = tuple((str(p), str(r)) for p, r in violations)
        self.quota = quota
        super().__init__(self.text())

    def text(self) -> str:
        if self.violations:
            return "; ".join(f"{p}: {r}" if p else r for p, r in self.violations)
        return self.message

    @property
    def grpc_code(self) -> Any:
        import grpc

        return grpc.StatusCode[self.code]

    def to_status(self) -> status_pb2.Status:
        """The rich status: numeric code, the message, and typed details, clipped to fit gRPC's
        metadata limit (a request-level status travels in trailing metadata, 8 KiB by default):
        an 8,000-character bad value must come back as its field violation, quoted short, not as
        "metadata exceeds hard limit"."""
        violations = _fitting(self.violations)
        message = clip("; ".join(f"{p}: {r}" if p else r for p, r in violations) if violations else self.message,
                        _MAX_MESSAGE)
        status = status_pb2.Status(code=code_pb2.Code.Value(self.code), message=message)
        if violations:
            bad = error_details_pb2.BadRequest(field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=p, description=r) for p, r in violations])
            detail = any_pb2.Any()
            detail.Pack(bad)
            status.details.append(detail)
        if self.quota:
            qf = error_details_pb2.QuotaFailure(violations=[
                error_details_pb2.QuotaFailure.Violation(subject=clip(self.quota, _MAX_PATH),
                                                         description=clip(self.message, _MAX_REASON))])
            detail = any_pb2.Any()
            detail.Pack(qf)
            status.details.append(detail)
        return status

    def prefixed(self, prefix: str) -> ServiceError:
        """The same error with every field path under ``prefix`` (a batch item's position).

        Paths that name the request's context (``context.resolution``) are request fields, not
        candidate fields, and stay as they are.
        """
        paths = [(p if _is_request_field(p) else join_path(prefix, p), r) for p, r in self.violations]
        paths = paths or [(prefix, self.message)]
        # a message that lists the violations lists them with the same prefix
        message = _listing(paths) if self.violations and self.message == _listing(self.violations) else self.message
        return type(self)(message, paths, quota=self.quota)

    def __reduce__(self) -> Any:  # picklable, for process pools in the client / tests
        return (rebuild_error_of, (type(self).__name__, self.message, self.violations, self.quota))


#: clipping of what a status carries (characters): a field path, a reason, the message, and the
#: budget of all violations together (message and details each stay well under 8 KiB)
_MAX_PATH = 200
_MAX_REASON = 1000
_MAX_MESSAGE = 1500
_VIOLATIONS_BUDGET = 2500


def _fitting(violations: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """As many violations as fit the budget, each clipped; a last one says how many were left out."""
    out: list[tuple[str, str]] = []
    used = 0
    for i, (p, r) in enumerate(violations):
        item = (clip(p, _MAX_PATH), clip(r, _MAX_REASON))
        size = len(item[0]) + len(item[1]) + 4
        if out and used + size > _VIOLATIONS_BUDGET:
            out.append(("", f"{len(violations) - i} more field violation(s) left out"))
            break
        out.append(item)
        used += size
    return out


_REQUEST_FIELDS = ("context", "budget", "detail", "pareto_fields")
_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _is_request_field(path: str) -> bool:
    head = path.split(".", 1)[0].split("[", 1)[0]
    return head in _REQUEST_FIELDS


def translate_path(engine_path: str, node: Any) -> str:
    """An engine field path in proto terms, walking the candidate's plain dict (``to_dict`` form).

    The engine writes a network's block as ``stages[0][1].kernel_size``; the proto wraps each stage
    in a ``Stage`` message and each block in a ``Block`` oneof named by its kind, so the same field
    is ``stages[0].blocks[1].mbconv.kernel_size``. Rule: an index into a list whose items are lists
    (a stage) is followed by ``.blocks``; an index that lands on a spec dict is followed by its kind.
    Unknown structure is passed through unchanged (the path is still meaningful to a reader).
    """
    out = ""
    cur: Any = node
    inner_list = False  # the previous index landed on a stage (a list of blocks)
    for m in _TOKEN.finditer(engine_path):
        name, index = m.group(1), m.group(2)
        if name is not None:
            out = f"{out}.{name}" if out else name
            cur = cur.get(name) if isinstance(cur, dict) else None
            inner_list = False
            continue
        i = int(index)
        if inner_list:
            out += ".blocks"
        out += f"[{i}]"
        cur = cur[i] if isinstance(cur, list) and 0 <= i < len(cur) else None
        inner_list = isinstance(cur, list)
        if isinstance(cur, dict) and isinstance(cur.get("kind"), str):
            out += f".{cur['kind']}"
    return out


class InvalidArgument(ServiceError):
    code = "INVALID_ARGUMENT"


def _listing(violations: Iterable[tuple[str, str]]) -> str:
    return "; ".join(f"{p}: {r}" if p else r for p, r in violations)


def invalid(violations: Iterable[tuple[str, str]]) -> InvalidArgument:
    """An INVALID_ARGUMENT whose message lists the same paths as its field violations, so a status
    never names one field in two styles (engine ``stages[0][1]`` beside proto ``stages[0].blocks[1]``)."""
    v = list(violations)
    return InvalidArgument(_listing(v) or "invalid argument", v)


class ResourceExhausted(ServiceError):
    code = "RESOURCE_EXHAUSTED"


class FailedPrecondition(ServiceError):
    code = "FAILED_PRECONDITION"


class Unavailable(ServiceError):
    code = "UNAVAILABLE"


class Unauthenticated(ServiceError):
    code = "UNAUTHENTICATED"


class DeadlineExceeded(ServiceError):
    code = "DEADLINE_EXCEEDED"


class Cancelled(ServiceError):
    code = "CANCELLED"


class Internal(ServiceError):
    code = "INTERNAL"


class NotFound(ServiceError):
    code = "NOT_FOUND"


_CLASSES: dict[str, type[ServiceError]] = {
    c.code: c for c in (InvalidArgument, ResourceExhausted, FailedPrecondition, Unavailable, Unauthenticated,
                        DeadlineExceeded, Cancelled, Internal, NotFound)
}


def rebuild_error_of(name: str, message: str, violations: tuple[tuple[str, str], ...],
                     quota: str | None) -> ServiceError:
    cls = next((c for c in _CLASSES.values() if c.__name__ == name), ServiceError)
    return cls(message, violations, quota=quota)


def error_for_code(code: str, message: str, violations: Iterable[tuple[str, str]] = (),
                   quota: str | None = None) -> ServiceError:
    cls = _CLASSES.get(code)
    if cls is None:
        err = ServiceError(message, violations, quota=quota)
        err.code = code if code in code_pb2.Code.keys() else "UNKNOWN"  # noqa: SIM118
        return err
    return cls(message, violations, quota=quota)


def from_status(status: status_pb2.Status) -> ServiceError:
    """The error a ``google.rpc.Status`` (a batch item's or a call's) describes."""
    try:
        code = code_pb2.Code.Name(status.code)
    except ValueError:
        code = "UNKNOWN"
    violations: list[tuple[str, str]] = []
    quota = None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend((v.field, v.description) for v in bad.field_violations)
        elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            qf = error_details_pb2.QuotaFailure()
            detail.Unpack(qf)
            if qf.violations:
                quota = qf.violations[0].subject
    return error_for_code(code, status.message, violations, quota)
