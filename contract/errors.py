"""The oracle's one error type: a canonical gRPC code, a message and the bad fields, raised by the
server core, sent as a ``google.rpc.Status`` and raised again by every client.

A NAS loop must be able to tell "this candidate is invalid" (skip it) from "the server is
restarting" (retry) from "over the limits" (split the batch) without parsing messages, so every
failure is an :class:`OracleError` subclass, one per code, carrying the field violations (path +
reason, paths in proto terms). The core raises these whether it runs behind gRPC or in-process,
and the remote clients rebuild the same classes from the status, so code written against one
mode works against the other and a bare ``grpc.RpcError`` never reaches a caller. ``code`` is the
canonical code *name*; grpc itself is imported only when a status is actually sent.
``to_status`` builds the ``google.rpc.Status`` that travels in ``grpc-status-details-bin`` (and
inside batch results): a ``BadRequest`` with one ``FieldViolation`` per bad field, or a
``QuotaFailure`` naming the limit that was exceeded.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from cost_engine.spec.base import Spec, clip, join_path, to_dict, validate
from cost_engine.spec.network import NetworkSpec

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
    "from_status",
    "invalid",
    "join_path",
    "spec_violations",
    "translate_path",
]


class Code(str, enum.Enum):  # noqa: UP042 (StrEnum would change what str() of a member prints)
    """The canonical gRPC status codes by name (a ``str``: ``Code.INTERNAL == "INTERNAL"``), kept
    free of ``grpc`` so the in-process path needs none."""

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
        import grpc  # only a process that sends or receives over gRPC needs it

        return grpc.StatusCode[self.value]


class FieldViolation(NamedTuple):
    """One bad field: ``candidates[3].network.stages[0].blocks[1].mbconv.kernel_size`` and why.
    A tuple, so ``(path, reason)`` pairs and violations compare equal."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class OracleError(Exception):
    """A failed request (or one failed item of a batch): canonical code, message, bad fields.

    ``violations`` are :class:`FieldViolation` (``(path, reason)`` pairs), paths in proto terms.
    ``quota`` names a limit (``max_batch_size``) for RESOURCE_EXHAUSTED.
    """

    code: Code = Code.UNKNOWN

    def __init__(self, message: str, violations: Iterable[tuple[str, str]] = (), *, quota: str | None = None,
                 code: Code | str | None = None):
        if code is not None:
            self.code = _code(code)
        self.message = message
        self.violations: tuple[FieldViolation, ...] = tuple(FieldViolation(str(p), str(r)) for p, r in violations)
        self.quota = quota
        super().__init__(f"{self.code.value}: {self.text()}")

    def text(self) -> str:
        """What the status's message says: the violations, or the message."""
        if self.violations:
            return _listing(self.violations)
        return self.message

    def lines(self) -> list[str]:
        """One human line per bad field (or the message), as the CLI prints them."""
        if self.violations:
            return [str(v) for v in self.violations]
        return [f"{self.code.value.lower().replace('_', ' ')}: {self.message}"]

    @property
    def grpc_code(self) -> Any:
        return self.code.grpc_code

    def to_status(self) -> status_pb2.Status:
        """The rich status: numeric code, the message, and typed details, clipped to fit gRPC's
        metadata limit (a request-level status travels in trailing metadata, 8 KiB by default):
        an 8,000-character bad value must come back as its field violation, quoted short, not as
        "metadata exceeds hard limit"."""
        violations = _fitting(self.violations)
        message = clip(_listing(violations) if violations else self.message, _MAX_MESSAGE)
        status = status_pb2.Status(code=code_pb2.Code.Value(self.code.value), message=message)
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

    def prefixed(self, prefix: str) -> OracleError:
        """The same error with every field path under ``prefix`` (a batch item's position).

        Paths that name the request's context (``context.resolution``) are request fields, not
        candidate fields, and stay as they are.
        """
        paths = [(p if _is_request_field(p) else join_path(prefix, p), r) for p, r in self.violations]
        paths = paths or [(prefix, self.message)]
        # a message that lists the violations lists them with the same prefix
        message = _listing(paths) if self.violations and self.message == _listing(self.violations) else self.message
        return error_for(self.code, message, paths, self.quota)

    def __reduce__(self) -> Any:  # picklable, for the analysis processes and process pools
        return (error_for, (self.code.value, self.message, tuple(map(tuple, self.violations)), self.quota))


def _code(code: Code | str) -> Code:
    try:
        return Code(code.value if isinstance(code, Code) else str(code))
    except ValueError:
        return Code.UNKNOWN


#: clipping of what a status carries (characters): a field path, a reason, the message, and the
#: budget of all violations together (message and details each stay well under 8 KiB)
_MAX_PATH = 200
_MAX_REASON = 1000
_MAX_MESSAGE = 1500
_VIOLATIONS_BUDGET = 2500


def _fitting(violations: tuple[FieldViolation, ...]) -> list[tuple[str, str]]:
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


def spec_violations(spec: Spec, path: str, *, recursive: bool = True) -> list[tuple[str, str]]:
    """The one validation of a candidate spec for the service: the engine's rules
    (``cost_engine.spec.validate``), each problem's path in proto terms under ``path``
    (``candidate.network``, ``candidates[3].block.mbconv``). ``recursive=False`` checks a network's
    own rules only, for a network whose blocks were validated as they were decoded."""
    problems = validate(spec, recursive=recursive)
    if not problems:
        return []
    if isinstance(spec, NetworkSpec):
        d = to_dict(spec)
        return [(join_path(path, translate_path(e.path, d)), e.reason) for e in problems]
    return [(join_path(path, e.path), e.reason) for e in problems]


class InvalidArgument(OracleError):
    code = Code.INVALID_ARGUMENT


def _listing(violations: Iterable[tuple[str, str]]) -> str:
    return "; ".join(f"{p}: {r}" if p else r for p, r in violations)


def invalid(violations: Iterable[tuple[str, str]]) -> InvalidArgument:
    """An INVALID_ARGUMENT whose message lists the same paths as its field violations, so a status
    never names one field in two styles (engine ``stages[0][1]`` beside proto ``stages[0].blocks[1]``)."""
    v = list(violations)
    return InvalidArgument(_listing(v) or "invalid argument", v)


class ResourceExhausted(OracleError):
    code = Code.RESOURCE_EXHAUSTED


class FailedPrecondition(OracleError):
    code = Code.FAILED_PRECONDITION


class Unavailable(OracleError):
    code = Code.UNAVAILABLE


class Unauthenticated(OracleError):
    code = Code.UNAUTHENTICATED


class PermissionDenied(OracleError):
    code = Code.PERMISSION_DENIED


class DeadlineExceeded(OracleError):
    code = Code.DEADLINE_EXCEEDED


class Cancelled(OracleError):
    code = Code.CANCELLED


class Internal(OracleError):
    code = Code.INTERNAL


class NotFound(OracleError):
    code = Code.NOT_FOUND


class Unimplemented(OracleError):
    code = Code.UNIMPLEMENTED


#: the class of each code: every subclass defined above (one per code)
_CLASSES: dict[Code, type[OracleError]] = {c.code: c for c in OracleError.__subclasses__()}


def error_for(code: Code | str, message: str, violations: Iterable[tuple[str, str]] = (),
              quota: str | None = None) -> OracleError:
    """The most specific :class:`OracleError` subclass for a code (an unknown name is UNKNOWN)."""
    c = _code(code)
    cls = _CLASSES.get(c)
    if cls is None:
        return OracleError(message, violations, quota=quota, code=c)
    return cls(message, violations, quota=quota)


def from_status(status: status_pb2.Status) -> OracleError:
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
    return error_for(code, status.message, violations, quota)
