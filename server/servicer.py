"""The gRPC handlers of ``costoracle.v1.CostOracle``: thin on purpose.

Each handler converts the request (``server.convert``), calls the oracle core, converts the
answer, and turns a :class:`ServiceError` into a canonical status with ``google.rpc.Status``
details. The only logic of its own is speed on the hot path, which must not change an answer:

* a candidate message seen before (same serialized bytes) maps straight to its validated,
  resolved candidate, skipping the descriptor walk and validation;
* a cached report is kept as its serialized ``CostReport`` bytes per detail level, so a cache
  hit costs a key lookup and a C-level parse, not a dict-to-message conversion.

Both memos are bounded and derived: the persistent cache (keyed by canonical JSON, never by
protobuf bytes) stays the one source of truth.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_status import rpc_status

from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc
from costoracle.v1 import spec_pb2 as spb
from server import convert
from server.errors import Internal, InvalidArgument, ResourceExhausted, ServiceError, Unavailable
from server.oracle import Context, Oracle, Prepared, SweepChunk, serve_report

__all__ = ["SERVICE_NAME", "CostOracleServicer", "generic_handler"]

SERVICE_NAME = "costoracle.v1.CostOracle"
log = logging.getLogger("cost_oracle.requests")


class _BytesLRU:
    """Bounded by total bytes of the values (and an entry count)."""

    def __init__(self, max_bytes: int, max_entries: int = 200_000):
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.bytes = 0
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        v = self._data.get(key)  # a plain read under the GIL; recency is refreshed on put only
        return v

    def put(self, key: Any, value: Any, size: int) -> None:
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._data[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes or len(self._data) > self.max_entries:
                _, (_, s) = self._data.popitem(last=False)
                self.bytes -= s

    def __len__(self) -> int:
        return len(self._data)


class _Undecodable:
    """What the safe deserializer returns for bytes that are not the expected message."""

    def __init__(self, type_name: str, reason: str):
        self.type_name = type_name
        self.reason = reason


def _parser(cls: Any) -> Callable[[bytes], Any]:
    name = cls.DESCRIPTOR.full_name

    def parse(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            return _Undecodable(name, str(exc) or type(exc).__name__)

    return parse


class CallInfo(threading.local):
    """Per-request facts for the request log (set by handlers, read by the logging wrapper)."""

    cache_hit: Any = None
    candidates: int = 0


class CostOracleServicer(oracle_pb2_grpc.CostOracleServicer):
    def __init__(self, oracle: Oracle, *, auth_required: bool = False, log_requests: bool = True,
                 report_memo_bytes: int = 256 << 20, candidate_memo: int = 65536):
        self.oracle = oracle
        self.auth_required = auth_required
        self.log_requests = log_requests
        self.draining = threading.Event()
        self._reports = _BytesLRU(report_memo_bytes)  # (cache key, detail) -> serialized CostReport
        self._candidates = _BytesLRU(1 << 62, max_entries=candidate_memo)  # candidate bytes -> Prepared
        self.info = CallInfo()

    # -- plumbing -------------------------------------------------------------------------
    def _run(self, method: str, request: Any, context: grpc.ServicerContext, fn: Callable[[], Any]) -> Any:
        """Run a unary handler: request log line, ServiceError -> rich status, bug -> INTERNAL."""
        start = time.perf_counter()
        self.info.cache_hit = None
        self.info.candidates = 0
        err: ServiceError | None = None
        try:
            self._check_request(request)
            result = fn()
        except ServiceError as exc:
            err = exc
        except Exception:
            log.exception("unhandled error in %s", method)
            err = Internal("internal error; see the server log")
        self._log(method, err.code if err else "OK", start)
        if err is not None:
            context.abort_with_status(rpc_status.to_status(err.to_status()))
        return result

    def _stream(self, method: str, request: Any, context: grpc.ServicerContext,
                fn: Callable[[], Iterator[Any]]) -> Iterator[Any]:
        start = time.perf_counter()
        self.info.cache_hit = None
        self.info.candidates = 0
        err: ServiceError | None = None
        sent = 0
        try:
            self._check_request(request)
            for msg in fn():
                if not context.is_active():
                    break
                sent += 1
                yield msg
        except ServiceError as exc:
            err = exc
        except GeneratorExit:
            raise
        except Exception:
            log.exception("unhandled error in %s", method)
            err = Internal("internal error; see the server log")
        self._log(method, err.code if err else ("OK" if context.is_active() else "CANCELLED"), start, messages=sent)
        if err is not None:
            context.abort_with_status(rpc_status.to_status(err.to_status()))

    def _check_request(self, request: Any) -> None:
        if self.draining.is_set():
            raise Unavailable("the server is shutting down; retry on another instance or later")
        if isinstance(request, _Undecodable):
            raise InvalidArgument(f"the request is not a valid {request.type_name} message",
                                  [("", f"cannot decode {request.type_name}: {request.reason}")])

    def _log(self, method: str, code: str, start: float, **extra: Any) -> None:
        if not self.log_requests:
            return
        rec: dict[str, Any] = {"event": "request", "method": method, "status": code,
                               "ms": round((time.perf_counter() - start) * 1000, 3)}
        if self.info.cache_hit is not None:
            rec["cache_hit"] = self.info.cache_hit
        if self.info.candidates:
            rec["candidates"] = self.info.candidates
        rec.update(extra)
        log.info(json.dumps(rec, separators=(",", ":")))

    @staticmethod
    def _deadline(context: grpc.ServicerContext) -> float | None:
        remaining = context.time_remaining()
        return None if remaining is None else time.time() + remaining

    def _prepare(self, msg: spb.Candidate, path: str) -> Prepared | ServiceError:
        """A candidate message as a validated candidate (memoized by its bytes), or its error."""
        key = msg.SerializeToString(deterministic=True)
        hit = self._candidates.get(key)
        if hit is not None:
            return hit[0]
        try:
            candidate = convert.candidate_from_proto(msg, path)
            prepared = self.oracle.prepare(candidate, path, validated=True)
        except ServiceError as exc:
            return exc
        self._candidates.put(key, prepared, 1)
        return prepared

    def _prepare_all(self, msgs: Sequence[spb.Candidate], path: str = "candidates",
                     offset: int = 0) -> list[Prepared | ServiceError]:
        return [self._prepare(m, f"{path}[{offset + i}]") for i, m in enumerate(msgs)]

    def _results(self, items: Sequence[Prepared | ServiceError], ctx: Context, detail: str,
                 paths: Sequence[str], context: grpc.ServicerContext) -> list[pb.CostResult]:
        """CostResult messages in order; cached reports come from the serialized-report memo."""
        out: list[pb.CostResult | None] = [None] * len(items)
        if ctx.wants_latency:
            dicts = self.oracle.cost_prepared(items, ctx, detail, paths, deadline=self._deadline(context),
                                              is_active=context.is_active)
            for i, d in enumerate(dicts):
                out[i] = _result(d)
            return out  # type: ignore[return-value]
        todo: list[int] = []
        memo_hits = 0
        for i, item in enumerate(items):
            if isinstance(item, ServiceError):
                out[i] = pb.CostResult(error=item.to_status())
                continue
            got = self._reports.get((item.key(ctx), detail))
            if got is None:
                todo.append(i)
                continue
            r = pb.CostResult()
            r.report.MergeFromString(got[0])
            r.report.candidate = item.label
            r.report.cache_hit = True
            out[i] = r
            memo_hits += 1
        if memo_hits:
            self.oracle.count_hits(memo_hits)
        if todo:
            full = self.oracle.full_reports([items[i] for i in todo], ctx, [paths[i] for i in todo])
            for i, got in zip(todo, full, strict=True):
                if isinstance(got, ServiceError):
                    out[i] = pb.CostResult(error=got.to_status())
                    continue
                report, key, hit = got
                item = items[i]
                assert isinstance(item, Prepared)
                msg = convert.report_to_proto(serve_report(report, "", key, True, detail))
                blob = msg.SerializeToString()
                self._reports.put((key, detail), blob, len(blob))
                r = pb.CostResult()
                r.report.MergeFromString(blob)
                r.report.candidate = item.label
                r.report.cache_hit = hit
                out[i] = r
        return out  # type: ignore[return-value]

    def _common(self, request: Any) -> tuple[Context, str]:
        errors: list[tuple[str, str]] = []
        ctx = detail = None
        try:
            ctx = convert.context_from_proto(request.context)
        except ServiceError as exc:
            errors.extend(exc.violations)
        try:
            detail = convert.detail_from_proto(request.detail)
        except ServiceError as exc:
            errors.extend(exc.violations)
        if errors:
            raise InvalidArgument("invalid request", errors)
        assert ctx is not None and detail is not None
        return ctx, detail

    def _check_size(self, msg: Any) -> Any:
        size = msg.ByteSize()
        if size > self.oracle.limits.max_message_bytes:
            raise ResourceExhausted(f"the response would be {size} bytes, over the server's limit of "
                                    f"{self.oracle.limits.max_message_bytes}; use StreamCostBatch, a smaller "
                                    "batch or a lower detail", quota="max_message_bytes")
        return msg

    # -- RPCs -----------------------------------------------------------------------------
    def GetCost(self, request: pb.GetCostRequest, context: grpc.ServicerContext) -> pb.GetCostResponse:
        def run() -> pb.GetCostResponse:
            ctx, detail = self._common(request)
            self.info.candidates = 1
            item = self._prepare(request.candidate, "candidate")
            r = self._results([item], ctx, detail, ["candidate"], context)[0]
            if r.HasField("error"):
                raise convert.status_to_error(r.error)
            self.info.cache_hit = r.report.cache_hit
            return pb.GetCostResponse(report=r.report)

        return self._run("GetCost", request, context, run)

    def GetCostBatch(self, request: pb.GetCostBatchRequest,
                     context: grpc.ServicerContext) -> pb.GetCostBatchResponse:
        def run() -> pb.GetCostBatchResponse:
            ctx, detail = self._common(request)
            n = len(request.candidates)
            self.info.candidates = n
            self.oracle.check_batch_size(n)
            items = self._prepare_all(request.candidates)
            results = self._results(items, ctx, detail, [f"candidates[{i}]" for i in range(n)], context)
            self.info.cache_hit = sum(1 for r in results if r.HasField("report") and r.report.cache_hit)
            resp = pb.GetCostBatchResponse()
            resp.results.extend(results)
            return self._check_size(resp)

        return self._run("GetCostBatch", request, context, run)

    def StreamCostBatch(self, request: pb.StreamCostBatchRequest,
                        context: grpc.ServicerContext) -> Iterator[pb.StreamCostBatchResponse]:
        def run() -> Iterator[pb.StreamCostBatchResponse]:
            ctx, detail = self._common(request)
            n = len(request.candidates)
            self.info.candidates = n
            self.oracle.check_batch_size(n)
            if request.chunk_size < 0:
                raise InvalidArgument("bad chunk size", [("chunk_size", f"must be >= 0, got {request.chunk_size}")])
            chunk = int(request.chunk_size or self.oracle.limits.default_chunk_size)
            hits = 0
            for start in range(0, n, chunk):
                msgs = request.candidates[start:start + chunk]
                items = self._prepare_all(msgs, offset=start)
                results = self._results(items, ctx, detail,
                                        [f"candidates[{start + i}]" for i in range(len(items))], context)
                hits += sum(1 for r in results if r.HasField("report") and r.report.cache_hit)
                self.info.cache_hit = hits
                resp = pb.StreamCostBatchResponse(offset=start, total=n)
                resp.results.extend(results)
                yield self._check_size(resp)
            if n == 0:
                yield pb.StreamCostBatchResponse(offset=0, total=0)

        return self._stream("StreamCostBatch", request, context, run)

    def _filter_args(self, request: Any) -> tuple[Context, str, Any, list[str]]:
        errors: list[tuple[str, str]] = []
        ctx = detail = budget = None
        pareto: list[str] = []
        for conv in ("common", "budget", "pareto"):
            try:
                if conv == "common":
                    ctx, detail = self._common(request)
                elif conv == "budget":
                    budget = convert.budget_from_proto(request.budget)
                else:
                    pareto = convert.pareto_from_proto(request.pareto_fields)
            except ServiceError as exc:
                errors.extend(exc.violations)
        if errors:
            raise InvalidArgument("invalid request", errors)
        assert ctx is not None and detail is not None and budget is not None
        self.oracle.check_budget(budget, ctx, pareto)
        return ctx, detail, budget, pareto

    def Filter(self, request: pb.FilterRequest, context: grpc.ServicerContext) -> pb.FilterResponse:
        def run() -> pb.FilterResponse:
            ctx, detail, budget, pareto = self._filter_args(request)
            n = len(request.candidates)
            self.info.candidates = n
            self.oracle.check_batch_size(n)
            items = self._prepare_all(request.candidates)
            outcome = self.oracle.filter_prepared(items, budget, ctx, pareto=pareto,
                                                  include_reports=request.include_reports, detail=detail,
                                                  deadline=self._deadline(context), is_active=context.is_active)
            resp = pb.FilterResponse(feasible=outcome.feasible, pareto_front=outcome.pareto_front,
                                     measurements=outcome.measurements)
            for item in outcome.results:
                convert.filter_item_to_proto(item, resp.results.add())
            return self._check_size(resp)

        return self._run("Filter", request, context, run)

    def Sweep(self, request: pb.SweepRequest, context: grpc.ServicerContext) -> Iterator[pb.SweepResponse]:
        def run() -> Iterator[pb.SweepResponse]:
            ctx, detail, budget, pareto = self._filter_args(request)
            space = convert.space_from_proto(request)
            if request.chunk_size < 0:
                raise InvalidArgument("bad chunk size", [("chunk_size", f"must be >= 0, got {request.chunk_size}")])
            parts = self.oracle.sweep_iter(space, budget, ctx, pareto=pareto, include_reports=request.include_reports,
                                           include_specs=request.include_specs, detail=detail,
                                           chunk_size=request.chunk_size or None, deadline=self._deadline(context),
                                           is_active=context.is_active)
            for part in parts:
                if isinstance(part, SweepChunk):
                    self.info.candidates += len(part.points)
                    resp = pb.SweepResponse(total=part.total)
                    for p in part.points:
                        convert.sweep_point_to_proto(p, resp.points.add())
                    yield self._check_size(resp)
                else:
                    yield pb.SweepResponse(total=part.total, done=True, feasible=part.feasible,
                                           pareto_front=part.pareto_front, measurements=part.measurements)

        return self._stream("Sweep", request, context, run)

    def GetServerInfo(self, request: pb.GetServerInfoRequest,
                      context: grpc.ServicerContext) -> pb.GetServerInfoResponse:
        def run() -> pb.GetServerInfoResponse:
            info = self.oracle.info()
            info["auth_required"] = self.auth_required
            return convert.info_to_proto(info)

        return self._run("GetServerInfo", request, context, run)

    def GetCacheStats(self, request: pb.GetCacheStatsRequest,
                      context: grpc.ServicerContext) -> pb.GetCacheStatsResponse:
        def run() -> pb.GetCacheStatsResponse:
            stats = self.oracle.cache_stats()
            stats["counters"]["report_memo_entries"] = len(self._reports)
            stats["counters"]["report_memo_bytes"] = self._reports.bytes
            stats["counters"]["candidate_memo_entries"] = len(self._candidates)
            return convert.stats_to_proto(stats)

        return self._run("GetCacheStats", request, context, run)

    def Calibrate(self, request: pb.CalibrateRequest, context: grpc.ServicerContext) -> pb.CalibrateResponse:
        def run() -> pb.CalibrateResponse:
            errors: list[tuple[str, str]] = []
            dtype = convert._enum(convert.DTYPES, request.dtype, "dtype", errors)
            if errors:
                raise InvalidArgument("invalid request", errors)
            threads = request.threads if request.HasField("threads") else None
            remaining = context.time_remaining()
            d = self.oracle.calibrate(request.device or "cpu", dtype, threads, request.refresh, timeout=remaining)
            return convert.calibration_to_proto(d)

        return self._run("Calibrate", request, context, run)


def _result(d: dict[str, Any] | ServiceError) -> pb.CostResult:
    if isinstance(d, ServiceError):
        return pb.CostResult(error=d.to_status())
    r = pb.CostResult()
    convert.report_to_proto(d, r.report)
    return r


_METHODS = {
    "GetCost": ("unary", pb.GetCostRequest, pb.GetCostResponse),
    "GetCostBatch": ("unary", pb.GetCostBatchRequest, pb.GetCostBatchResponse),
    "StreamCostBatch": ("stream", pb.StreamCostBatchRequest, pb.StreamCostBatchResponse),
    "Filter": ("unary", pb.FilterRequest, pb.FilterResponse),
    "Sweep": ("stream", pb.SweepRequest, pb.SweepResponse),
    "GetServerInfo": ("unary", pb.GetServerInfoRequest, pb.GetServerInfoResponse),
    "GetCacheStats": ("unary", pb.GetCacheStatsRequest, pb.GetCacheStatsResponse),
    "Calibrate": ("unary", pb.CalibrateRequest, pb.CalibrateResponse),
}


def generic_handler(servicer: CostOracleServicer) -> grpc.GenericRpcHandler:
    """The service's handlers, like the generated ``add_CostOracleServicer_to_server`` but with
    request deserializers that never raise: undecodable bytes become INVALID_ARGUMENT (named as
    such) instead of the INTERNAL that grpc gives a deserializer exception."""
    desc = pb.DESCRIPTOR.services_by_name["CostOracle"]
    assert {m.name for m in desc.methods} == set(_METHODS), "servicer and proto disagree on the RPCs"
    handlers = {}
    for name, (kind, req, resp) in _METHODS.items():
        fn = getattr(servicer, name)
        make = grpc.unary_unary_rpc_method_handler if kind == "unary" else grpc.unary_stream_rpc_method_handler
        handlers[name] = make(fn, request_deserializer=_parser(req), response_serializer=resp.SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)
