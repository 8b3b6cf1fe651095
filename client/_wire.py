"""Requests and responses on the wire, shared by the sync and the asyncio remote clients.

Building a request and reading a response is the same code for both transports; only how the
call is made (and how a retry waits) differs. Conversion of specs, contexts, budgets, spaces and
reports goes through ``cost_oracle.contract.convert`` — the functions the server itself uses — so a field means
the same thing on both ends. A candidate the client cannot even put on the wire (a bare block
without ``in_channels``, something that is not a candidate) is answered locally with the same
``InvalidArgument`` and field path the in-process oracle gives.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.rpc import status_pb2

from cost_engine.context import LATENCY_DTYPES
from cost_engine.spec.base import Spec
from cost_oracle.client.base import (
    Split,
    as_candidate,
    budget_or_default,
    make_context,
    merge_costs,
    merge_filter,
    pareto_names,
    split,
    split_kwargs,
)
from cost_oracle.client.errors import Code, FieldViolation, InvalidArgument, OracleError, error_for
from cost_oracle.client.types import CostResult, FilterOutcome, ItemError, ServerInfo, SweepOutcome
from cost_oracle.contract.convert import (
    budget_to_proto,
    candidate_to_proto,
    context_to_proto,
    cost_result_from_proto,
    detail_to_proto,
    filter_result_from_proto,
    item_error_from_status,
    pareto_to_proto,
    space_to_proto,
    sweep_point_from_proto,
)
from cost_oracle.contract.errors import from_status
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc

DEFAULT_TIMEOUT_S = 60.0
LATENCY_TIMEOUT_S = 600.0
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20
#: client-side split of huge batches (the server's default limit per request)
DEFAULT_MAX_BATCH = 10_000
_DETAILS_BIN = "grpc-status-details-bin"


def channel_options(max_message_bytes: int, extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """Channel options: message limits matching the server's, and quick reconnects.

    gRPC's default reconnect backoff starts at 1 s and grows to 120 s; a client retrying a server
    that is (re)starting would keep failing fast on a channel still waiting out that backoff, so
    it is shortened to match the client's own retry schedule.
    """
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
        ("grpc.enable_retries", 0),  # retries are the client's own (UNAVAILABLE only, with backoff)
        *extra,
    ]


def credentials(tls: Any) -> Any:
    """``None`` for plaintext; ``True`` system roots; PEM bytes / a path a root certificate; or credentials."""

    if tls is None or tls is False:
        return None
    if tls is True:
        return grpc.ssl_channel_credentials()
    if isinstance(tls, (bytes, bytearray)):
        return grpc.ssl_channel_credentials(root_certificates=bytes(tls))
    if isinstance(tls, str):

        return grpc.ssl_channel_credentials(root_certificates=Path(tls).read_bytes())
    return tls  # grpc.ChannelCredentials


def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with full jitter: uniform in [d/2, d], d = initial * 2**attempt (capped)."""
    d = min(maximum, initial * (2 ** attempt))
    return random.uniform(d / 2, d)


def rpc_error(exc: Any) -> OracleError:
    """A ``grpc.RpcError`` (sync or aio) as the typed error, with the field violations of its rich status."""
    code_obj = exc.code() if hasattr(exc, "code") else None
    code = getattr(code_obj, "name", "UNKNOWN")
    details = (exc.details() if hasattr(exc, "details") else None) or str(code)
    try:
        trailing = exc.trailing_metadata() or ()
    except Exception:  # a call that never started has none
        trailing = ()
    for key, value in trailing:
        if key == _DETAILS_BIN:

            try:
                status = status_pb2.Status.FromString(value)
            except Exception:
                break
            err = from_status(status)
            return error_for(code, err.message or details, err.violations, err.quota)
    return error_for(code, details)


def is_retryable(exc: Any) -> bool:
    code = exc.code() if hasattr(exc, "code") else None
    return getattr(code, "name", "") == Code.UNAVAILABLE.value


# -- requests --------------------------------------------------------------------------------
def candidate_proto(candidate: Any, in_channels: int | None, path: str) -> Any:
    """The wire form of one candidate, or ``InvalidArgument`` at ``path`` (as the server would answer)."""
    return to_proto(as_candidate(candidate, in_channels, path), path)


def to_proto(c: Any, path: str) -> Any:
    try:
        return candidate_to_proto(c)
    except TypeError:
        if isinstance(c, Spec):
            raise InvalidArgument("a single block needs its input channels", [FieldViolation(
                f"{path}.in_channels", f"a standalone {c.kind!r} block needs in_channels: pass "
                                       "BlockCandidate(block, in_channels) or in_channels=")]) from None
        raise InvalidArgument("not a candidate", [FieldViolation(
            path, f"must be a network spec, a built-in model name or a block candidate, got {type(c).__name__}")]) \
            from None
    except ValueError as exc:  # e.g. an integer beyond int64
        raise InvalidArgument("value out of range", [FieldViolation(path, str(exc))]) from None


def prepare_many(candidates: Iterable[Any], in_channels: int | None) -> Split:
    """Wire forms of the candidates that have one; local errors (same paths as the server's) for the rest."""
    return split(candidates, in_channels, to_proto)


def context_and_detail(kw: dict[str, Any]) -> tuple[Any, int, int | None]:
    """(proto Context, proto Detail, in_channels) from a method's keywords."""
    ctx, detail, in_channels = split_kwargs(kw)
    context = make_context(**ctx)
    # enums cannot carry a bad value, so check here what the server would name (same paths)
    problems = context.validate("context")
    if problems:
        raise InvalidArgument("invalid context", [FieldViolation(p, r) for p, r in problems])
    if detail is not None and detail not in ("full", "totals", "scalars"):
        raise InvalidArgument("bad detail", [FieldViolation("detail", f"must be full, totals or scalars; got "
                                                                       f"{detail!r}")])
    return context_to_proto(context), detail_to_proto(detail or "full"), in_channels


def dtype_enum(dtype: str, path: str) -> int:
    """A latency dtype name (calibration) as the proto enum; anything else is the same
    InvalidArgument the server gives."""
    if dtype not in LATENCY_DTYPES:
        raise InvalidArgument("bad dtype", [FieldViolation(path, f"must be one of {', '.join(LATENCY_DTYPES)}; "
                                                                 f"got {dtype!r}")])
    return pb.DType.Value("DTYPE_" + dtype.upper())


def fit_request(candidates: Any, kw: dict[str, Any], max_units: int, networks: int,
                budget_minutes: float | None, adaptive: float | None, seed: int) -> Any:
    """A ``FitLatencyModelRequest``: the space's candidates and the context keywords."""
    context, _, _ = context_and_detail(kw)
    req = pb.FitLatencyModelRequest(context=context, max_units=max_units, networks=networks,
                                    budget_minutes=float(budget_minutes or 0.0), seed=seed)
    for i, c in enumerate(candidates):
        req.candidates.append(candidate_proto(c, None, f"candidates[{i}]"))
    if adaptive is not None:
        req.adaptive = adaptive
    return req


def fit_deadline_s(budget_minutes: float | None, timeout: float | None) -> float:
    """A fit's deadline: the caller's, else its budget with room for the last chunk, else an hour."""
    if timeout is not None:
        return timeout
    return budget_minutes * 60.0 + 600.0 if budget_minutes else 3600.0


def fit_message(msg: Any, progress: Callable[[str, int, int], None] | None) -> dict[str, Any] | None:
    """The model of a fit's last message (None before it), reporting progress on the way."""
    if msg.HasField("model"):
        return message_dict(msg.model)
    if progress is not None:
        progress(msg.phase, int(msg.done), int(msg.total))
    return None


def wants_latency(kw: dict[str, Any]) -> bool:
    lat = kw.get("latency")
    return lat not in (None, False, "none", "")


def cost_request(candidate: Any, kw: dict[str, Any]) -> Any:
    context, detail, in_channels = context_and_detail(kw)
    return pb.GetCostRequest(candidate=candidate_proto(candidate, in_channels, "candidate"), context=context,
                             detail=detail)


def filter_request(protos: list[Any], budget: Any, pareto: Any, include_reports: bool, kw: dict[str, Any]) -> Any:
    kw = dict(kw)
    kw.setdefault("detail", "scalars")
    context, detail, _ = context_and_detail(kw)
    return pb.FilterRequest(candidates=protos, context=context, budget=budget_to_proto(budget_or_default(budget)),
                            pareto_fields=pareto_to_proto(pareto_names(pareto)), include_reports=include_reports,
                            detail=detail)


def sweep_request(space: Any, budget: Any, pareto: Any, include_reports: bool, include_specs: bool,
                  chunk_size: int | None, kw: dict[str, Any]) -> Any:
    kw = dict(kw)
    kw.setdefault("detail", "scalars")
    context, detail, _ = context_and_detail(kw)
    req = pb.SweepRequest(context=context, budget=budget_to_proto(budget_or_default(budget)),
                          pareto_fields=pareto_to_proto(pareto_names(pareto)), include_reports=include_reports,
                          include_specs=include_specs, detail=detail, chunk_size=chunk_size or 0)
    try:
        space_to_proto(space, req)
    except TypeError:
        raise InvalidArgument("bad sweep space", [FieldViolation(
            "space", f"must be an EfficientNetCompoundSpace, MultiplierSpace or FasterNetSpace, got "
                     f"{type(space).__name__}")]) from None
    return req


# -- responses -------------------------------------------------------------------------------
cost_result = cost_result_from_proto
merge = merge_costs


def batch_item(result_msg: Any, index: int) -> CostResult | ItemError:
    if result_msg.WhichOneof("result") == "error":
        return item_error_from_status(index, result_msg.error)
    return cost_result(result_msg.report)


def filter_outcome(resp: Any, parts: Split) -> FilterOutcome:
    outcome = FilterOutcome(results=tuple(filter_result_from_proto(m) for m in resp.results),
                            feasible=tuple(resp.feasible), pareto_front=tuple(resp.pareto_front),
                            measurements=resp.measurements)
    return merge_filter(parts, outcome)


class SweepCollector:
    """Accumulates a streamed sweep: chunks of points, then the summary in the last message."""

    def __init__(self) -> None:
        self.points: list[Any] = []
        self.total = 0
        self.summary: Any = None

    def add(self, resp: Any) -> None:
        self.total = resp.total or self.total
        self.points.extend(sweep_point_from_proto(p) for p in resp.points)
        if resp.done:
            self.summary = resp

    def outcome(self) -> SweepOutcome:
        if self.summary is None:
            raise error_for(Code.UNAVAILABLE, "the sweep stream ended before its summary")
        s = self.summary
        front = set(s.pareto_front)
        points = tuple(p if p.index not in front or p.result.pareto else _with_pareto(p) for p in self.points)
        return SweepOutcome(total=self.total, points=points, feasible=tuple(s.feasible),
                            pareto_front=tuple(s.pareto_front), measurements=s.measurements, distinct=s.distinct)


def _with_pareto(p: Any) -> Any:

    return dataclasses.replace(p, result=dataclasses.replace(p.result, pareto=True))


def message_dict(m: Any) -> dict[str, Any]:
    """A response message as plain data, field names as in the proto (int64 stay ints)."""
    out: dict[str, Any] = {}
    for fd in m.DESCRIPTOR.fields:
        v = getattr(m, fd.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            out[fd.name] = {k: message_dict(x) if value_fd.message_type is not None else x for k, x in v.items()}
        elif _repeated(fd):
            out[fd.name] = [message_dict(x) if fd.message_type is not None else x for x in v]
        elif fd.message_type is not None:
            out[fd.name] = message_dict(v)
        else:
            out[fd.name] = v
    return out


def _repeated(fd: Any) -> bool:
    """Whether a field is repeated (``is_repeated`` in protobuf >= 5.28 / upb; ``label`` before)."""
    flag = getattr(fd, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return fd.label == fd.LABEL_REPEATED


def server_info(resp: Any) -> ServerInfo:
    return ServerInfo(message_dict(resp))


class RemoteBase:
    """What the sync and the asyncio client share: call settings, metadata and the channel
    (``grpc`` or ``grpc.aio``, by the subclass's ``_aio``)."""

    _aio = False

    def __init__(self, target: str, *, token: str | None = None, tls: Any = False,
                 timeout: float = DEFAULT_TIMEOUT_S, latency_timeout: float = LATENCY_TIMEOUT_S,
                 retries: int = 3, backoff: float = 0.2, max_backoff: float = 5.0,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, max_batch: int = DEFAULT_MAX_BATCH,
                 options: Sequence[tuple[str, Any]] = ()):
        import grpc.aio


        self.target = target
        self.timeout = timeout
        self.latency_timeout = latency_timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_batch = max(1, int(max_batch))
        self._grpc = grpc
        self._metadata = metadata(token)
        opts = channel_options(max_message_bytes, options)
        creds = credentials(tls)
        channels = grpc.aio if self._aio else grpc
        self._channel = (channels.secure_channel(target, creds, options=opts) if creds is not None
                         else channels.insecure_channel(target, options=opts))
        self._stub = oracle_pb2_grpc.CostOracleStub(self._channel)

    def _deadline(self, timeout: float | None, latency: bool = False) -> float:
        t = timeout if timeout is not None else (self.latency_timeout if latency else self.timeout)
        return time.monotonic() + t

    def _retry_pause(self, exc: Any, attempt: int, deadline: float, received: bool = False) -> float:
        """Seconds to wait before retrying a failed call, or raise its typed error: only
        UNAVAILABLE is retried, within the retry budget and the deadline, and a stream only
        before its first message (nothing is delivered twice)."""
        if received or not (is_retryable(exc) and attempt < self.retries):
            raise rpc_error(exc) from None
        pause = backoff_delay(attempt, self.backoff, self.max_backoff)
        if time.monotonic() + pause >= deadline:
            raise rpc_error(exc) from None
        return pause
