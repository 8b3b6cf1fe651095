"""The gRPC handlers of ``costoracle.v1.CostOracle``: thin on purpose.

Each handler converts the request (``cost_oracle.contract.convert``), calls the oracle core, converts the
answer, and turns a :class:`OracleError` into a canonical status with ``google.rpc.Status``
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
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_status import rpc_status
from sqlalchemy.exc import InterfaceError, OperationalError

from cost_oracle.contract import convert
from cost_oracle.contract.errors import Internal, InvalidArgument, OracleError, ResourceExhausted, Unavailable
from cost_oracle.contract.results import SweepChunk
from cost_oracle.contract.types import Context
from cost_oracle.contract.wire import LEN, VARINT, len_field, split_field, tag_bytes, varint
from cost_oracle.server.cancel import checkpoint, ended_reason, note_stopped, watch
from cost_oracle.server.candidates import Prepared
from cost_oracle.server.memo import LRU
from cost_oracle.server.oracle import Oracle
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc
from costoracle.v1 import spec_pb2 as spb

#: a remaining time above this (~30 years) is gRPC's way of saying the call has no deadline
_NO_DEADLINE_S = 1e9

__all__ = ["SERVICE_NAME", "CostOracleServicer", "generic_handler"]

SERVICE_NAME = "costoracle.v1.CostOracle"
log = logging.getLogger("cost_oracle.requests")

# the response bytes the hot path writes itself, every tag from the descriptors (cost_oracle.contract.wire)
_RESULT_REPORT = tag_bytes(pb.CostResult, "report", LEN)
_REPORT_CANDIDATE = tag_bytes(pb.CostReport, "candidate", LEN)
_CACHE_HIT = {hit: tag_bytes(pb.CostReport, "cache_hit", VARINT) + varint(int(hit)) for hit in (True, False)}
_BATCH_RESULTS = tag_bytes(pb.GetCostBatchResponse, "results", LEN)
_STREAM_OFFSET = tag_bytes(pb.StreamCostBatchResponse, "offset", VARINT)
_STREAM_TOTAL = tag_bytes(pb.StreamCostBatchResponse, "total", VARINT)
_STREAM_RESULTS = tag_bytes(pb.StreamCostBatchResponse, "results", LEN)
# GetCost answers a CostResult's bytes as its GetCostResponse: both must hold the report in one field
if tag_bytes(pb.GetCostResponse, "report", LEN) != _RESULT_REPORT:
    raise RuntimeError("GetCostResponse.report and CostResult.report must have one field number")
#: candidates converted per part of a long batch when analysis processes take the cold ones
_PIPELINE_PART = 128
#: candidates per part of a unary batch with breakdowns, whose answer size is checked part by part
_SIZED_PART = 64
#: the largest answer a candidate keeps for its next identical request (scalar reports are ~400
#: bytes; this bounds that memory to 64 MiB at the candidate memo's 65,536 entries)
_SERVED_MAX_BYTES = 1024


def _memo_size(raw: bytes) -> int:
    """What a memoized candidate holds, estimated from its wire size: the key bytes, its spec
    objects and canonical JSON (measured with tracemalloc: 4-9x the wire size for networks of
    16-256 blocks, less for longer ones whose blocks repeat), and the answer it may keep."""
    return 5 * len(raw) + _SERVED_MAX_BYTES + 3072


def _served_key(ctx: Context, detail: str) -> tuple[Any, ...]:
    """What an analytic answer depends on besides the candidate (see ``Prepared.key``)."""
    return (ctx.batch_size, ctx.resolution, ctx.dtype, detail)


class _Undecodable:
    """What the safe deserializer returns for bytes that are not the expected message."""

    def __init__(self, type_name: str, reason: str):
        self.type_name = type_name
        self.reason = reason


class Split:
    """A request whose candidates stay serialized: ``shell`` is the request without them (parsed),
    ``candidates`` the bytes of each, in order. A candidate seen before is recognized by its bytes
    and never parsed again; a new one is parsed on its own, so a corrupt one is its own error."""

    __slots__ = ("candidates", "shell")

    def __init__(self, shell: Any, candidates: list[bytes]):
        self.shell = shell
        self.candidates = candidates


def _parser(cls: Any, candidates_field: int | None = None) -> Callable[[bytes], Any]:
    """A request deserializer that never raises (undecodable bytes become :class:`_Undecodable`);
    with ``candidates_field`` it returns a :class:`Split`."""
    name = cls.DESCRIPTOR.full_name

    def parse(data: bytes) -> Any:
        try:
            if candidates_field is None:
                return cls.FromString(data)
            shell, cands = split_field(data, candidates_field)
            return Split(cls.FromString(shell), cands)
        except (DecodeError, RuntimeError, ValueError, IndexError) as exc:
            return _Undecodable(name, str(exc) or type(exc).__name__)

    return parse


def _split(request: Any, repeated: bool = True) -> tuple[Any, list[bytes]]:
    """(request without its candidates, serialized candidates) for a Split or a plain message."""
    if isinstance(request, Split):
        return request.shell, request.candidates
    if repeated:
        return request, [c.SerializeToString(deterministic=True) for c in request.candidates]
    return request, [request.candidate.SerializeToString(deterministic=True)] if request.HasField("candidate") else []


def _serialize(response: Any) -> bytes:
    """Responses are messages, or wire bytes the handler assembled itself (the batch hot path)."""
    return response if isinstance(response, bytes) else response.SerializeToString()


def _unhandled(exc: Exception, method: str) -> OracleError:
    """An exception no handler turned into a status: a lost cache database is UNAVAILABLE (a
    client retries it, and the connection pool reconnects on the next request); anything else
    is INTERNAL, logged with its traceback, never sent."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        log.warning("cache database unavailable in %s: %s", method, str(getattr(exc, "orig", exc)).splitlines()[:1])
        return Unavailable("the cache database is unavailable; retry later")
    log.exception("unhandled error in %s", method)
    return Internal("internal error; see the server log")




class CallInfo(threading.local):
    """Per-request facts for the request log (set by handlers, read by the logging wrapper)."""

    cache_hit: Any = None
    candidates: int = 0


class CostOracleServicer(oracle_pb2_grpc.CostOracleServicer):
    def __init__(self, oracle: Oracle, *, auth_required: bool = False, log_requests: bool = True,
                 report_memo_bytes: int = 256 << 20, candidate_memo: int = 65536,
                 candidate_memo_bytes: int = 256 << 20):
        self.oracle = oracle
        self.auth_required = auth_required
        self.log_requests = log_requests
        self.draining = threading.Event()
        # (cache key, detail) -> serialized CostReport
        self._reports = LRU(200_000, report_memo_bytes, recency_on_get=False)
        # candidate bytes -> Prepared, bounded by an estimate of the memory each holds
        self._candidates = LRU(candidate_memo, candidate_memo_bytes, recency_on_get=False)
        self.info = CallInfo()
        #: Prometheus metrics (``server/metrics.py``), when the server exports them
        self.metrics: Any = None
        self._labels: dict[str, bytes] = {}  # candidate label -> its encoded CostReport.candidate field

    # -- plumbing -------------------------------------------------------------------------
    def _run(self, method: str, request: Any, context: grpc.ServicerContext, fn: Callable[[], Any]) -> Any:
        """Run a unary handler: request log line, OracleError -> rich status, bug -> INTERNAL."""
        start = time.perf_counter()
        self.info.cache_hit = None
        self.info.candidates = 0
        err: OracleError | None = None
        try:
            self._check_request(request)
            with self.oracle.gate.work(), watch(self._deadline(context), context.is_active):
                result = fn()
        except OracleError as exc:
            err = exc
        except Exception as exc:
            err = _unhandled(exc, method)
        self._log(method, err.code.value if err else "OK", start)
        if err is not None:
            context.abort_with_status(rpc_status.to_status(err.to_status()))
        return result

    def _stream(self, method: str, request: Any, context: grpc.ServicerContext,
                fn: Callable[[], Iterator[Any]]) -> Iterator[Any]:
        start = time.perf_counter()
        self.info.cache_hit = None
        self.info.candidates = 0
        err: OracleError | None = None
        sent = 0
        try:
            self._check_request(request)
            deadline = self._deadline(context)
            with self.oracle.gate.work(), watch(deadline, context.is_active):
                try:
                    for msg in fn():
                        checkpoint(force=True)  # the deadline or the client may have gone while it was built
                        sent += 1
                        yield msg
                except GeneratorExit:
                    # gRPC closed the stream between two messages: the deadline passed while a
                    # message was sent, or the client went away. Counted before the work slot is
                    # released, so whoever sees the server idle sees the count too.
                    note_stopped(ended_reason(deadline))
                    raise
        except OracleError as exc:
            err = exc
        except Exception as exc:
            err = _unhandled(exc, method)
        code = err.code.value if err else ("OK" if context.is_active() else "CANCELLED")
        self._log(method, code, start, messages=sent)
        if err is not None:
            context.abort_with_status(rpc_status.to_status(err.to_status()))

    def _check_request(self, request: Any) -> None:
        if self.draining.is_set():
            raise Unavailable("the server is shutting down; retry on another instance or later")
        if isinstance(request, _Undecodable):
            raise InvalidArgument(f"the request is not a valid {request.type_name} message",
                                  [("", f"cannot decode {request.type_name}: {request.reason}")])

    def _log(self, method: str, code: str, start: float, **extra: Any) -> None:
        if self.metrics is not None:
            self.metrics.observe(method, code, time.perf_counter() - start)
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
        """The RPC's deadline as a ``time.time()``, None without one: gRPC reports "no deadline"
        as a remaining time of ~10^10 years, which a wait on it overflows (``time_t``)."""
        remaining = context.time_remaining()
        return None if remaining is None or remaining > _NO_DEADLINE_S else time.time() + remaining

    def _prepare(self, raw: bytes, path: str) -> Prepared | OracleError:
        """A serialized candidate as a validated candidate (memoized by its bytes), or its error."""
        hit = self._candidates.get(raw)
        if hit is not None:
            return hit
        fast = convert.network_from_wire(raw)  # a network read block by block off the wire
        if fast is not None:
            prepared = self.oracle.prepare(fast[0], path, validated=True, spec_json=fast[1])
        else:
            try:
                msg = spb.Candidate.FromString(raw)
            except (DecodeError, RuntimeError, ValueError) as exc:
                return InvalidArgument("undecodable candidate",
                                       [(path, f"cannot decode costoracle.v1.Candidate: {exc}")])
            try:
                prepared = self.oracle.prepare(convert.candidate_from_proto(msg, path), path, validated=True)
            except OracleError as exc:
                return exc
        if prepared.wire is None:
            prepared.wire = raw
        self._candidates.put(raw, prepared, _memo_size(raw))
        return prepared

    def _prepare_all(self, raws: Sequence[bytes], path: str = "candidates",
                     offset: int = 0) -> list[Prepared | OracleError]:
        out: list[Prepared | OracleError] = []
        for i, r in enumerate(raws):
            checkpoint()
            out.append(self._prepare(r, f"{path}[{offset + i}]"))
        return out

    def _batch(self, raws: Sequence[bytes], ctx: Context, detail: str, context: grpc.ServicerContext,
               offset: int = 0, max_bytes: int | None = None) -> list[tuple[bytes, bool | None]]:
        """Serialized ``CostResult``s of serialized candidates, in order, each with its cache hit.

        With analysis processes, a long batch is converted and handed over in parts: the processes
        analyze one part while this thread converts the next, and the results are collected in order.
        With ``max_bytes`` (a unary answer), the results are built part by part and the request is
        refused as soon as they pass the limit, not after a 500 MB answer has been built.
        """
        if not ctx.wants_latency:
            served = self._served(raws, ctx, detail)
            if served is not None:
                return served
        sized = max_bytes is not None and detail != "scalars"  # scalar answers are small: checked whole
        step = _PIPELINE_PART if self.oracle.analyze_processes > 0 else max(1, len(raws))
        if sized:
            step = min(step, _SIZED_PART)
        finishers = []
        out: list[tuple[bytes, bool | None]] = []
        size = 0
        for start in range(0, len(raws), step):
            items = self._prepare_all(raws[start:start + step], offset=offset + start)
            paths = [f"candidates[{offset + start + i}]" for i in range(len(items))]
            finish = self._begin_results(items, ctx, detail, paths, context)
            if not sized:
                finishers.append(finish)
                continue
            part = finish()
            size += sum(len(data) + 6 for data, _ in part)  # + field tag and length
            if size > max_bytes:
                raise self._too_large(f"more than {size}", done=start + len(part), total=len(raws))
            out.extend(part)
        for finish in finishers:
            out.extend(finish())
        return out

    def _too_large(self, size: str, done: int | None = None, total: int | None = None) -> ResourceExhausted:
        where = f" (refused after {done} of {total} candidates)" if done is not None else ""
        return ResourceExhausted(f"the response would be {size} bytes, over the server's limit of "
                                 f"{self.oracle.limits.max_message_bytes}{where}; use StreamCostBatch, a smaller "
                                 "batch or a lower detail", quota="max_message_bytes")

    def _served(self, raws: Sequence[bytes], ctx: Context, detail: str) -> list[tuple[bytes, bool | None]] | None:
        """The answers of a batch whose candidates were all answered before from the memo at this
        context and detail (a search loop asking again): each one lookup by its bytes; None when
        any one was not (the full path then answers all of them)."""
        memo = _served_key(ctx, detail)
        get = self._candidates.get
        out: list[tuple[bytes, bool | None]] = []
        for raw in raws:
            hit = get(raw)
            served = hit.served if hit is not None else None
            if served is None or served[0] != memo:
                return None
            out.append((served[1], True))
        self.oracle.count_hits(len(out))
        return out

    def _results(self, items: Sequence[Prepared | OracleError], ctx: Context, detail: str,
                 paths: Sequence[str], context: grpc.ServicerContext) -> list[tuple[bytes, bool | None]]:
        """Serialized ``CostResult``s in order, each with its cache hit (None for an error)."""
        return self._begin_results(items, ctx, detail, paths, context)()

    def _begin_results(self, items: Sequence[Prepared | OracleError], ctx: Context, detail: str,
                       paths: Sequence[str],
                       context: grpc.ServicerContext) -> Callable[[], list[tuple[bytes, bool | None]]]:
        """:meth:`_results` in two steps (see :meth:`Oracle.begin_report_blobs`).

        A report is served from the memo of serialized reports when this process has served its
        key at this detail before; otherwise from the oracle (its LRU, the cache, or ``analyze``).
        """
        out: list[tuple[bytes, bool | None] | None] = [None] * len(items)
        if ctx.wants_latency:
            dicts = self.oracle.cost_prepared(items, ctx, detail, paths, deadline=self._deadline(context),
                                              is_active=context.is_active)
            for i, d in enumerate(dicts):
                out[i] = (_result(d).SerializeToString(), None if isinstance(d, OracleError) else d["cache_hit"])
            return lambda: out  # type: ignore[return-value]
        todo: list[int] = []
        memo_hits = 0
        for i, item in enumerate(items):
            if isinstance(item, OracleError):
                out[i] = (pb.CostResult(error=item.to_status()).SerializeToString(), None)
                continue
            got = self._reports.get((item.key(ctx), detail))
            if got is None:
                todo.append(i)
                continue
            data = self._encode(got, item.label, True)
            out[i] = (data, True)
            if len(data) <= _SERVED_MAX_BYTES:
                item.served = (_served_key(ctx, detail), data)
            memo_hits += 1
        if memo_hits:
            self.oracle.count_hits(memo_hits)
        if not todo:
            return lambda: out  # type: ignore[return-value]
        pending = self.oracle.begin_report_blobs([items[i] for i in todo], ctx, detail, [paths[i] for i in todo],
                                                 convert.report_blob, convert.candidate_from_wire)

        def finish() -> list[tuple[bytes, bool | None]]:
            for i, got in zip(todo, pending(), strict=True):
                if isinstance(got, OracleError):
                    out[i] = (pb.CostResult(error=got.to_status()).SerializeToString(), None)
                    continue
                blob, key, hit = got
                item = items[i]
                assert isinstance(item, Prepared)
                self._reports.put((key, detail), blob, len(blob))
                out[i] = (self._encode(blob, item.label, hit), hit)
            return out  # type: ignore[return-value]

        return finish

    def _encode(self, blob: bytes, label: str, hit: bool) -> bytes:
        """A ``CostResult`` holding the memoized report with this request's label and cache hit."""
        tail = self._labels.get(label)
        if tail is None:
            tail = len_field(_REPORT_CANDIDATE, label.encode())
            if len(self._labels) < 65536:
                self._labels[label] = tail
        report = blob + tail + _CACHE_HIT[hit]
        return _RESULT_REPORT + varint(len(report)) + report

    def _common(self, request: Any) -> tuple[Context, str]:
        errors: list[tuple[str, str]] = []
        ctx = detail = None
        try:
            ctx = convert.context_from_proto(request.context)
        except OracleError as exc:
            errors.extend(exc.violations)
        try:
            detail = convert.detail_from_proto(request.detail)
        except OracleError as exc:
            errors.extend(exc.violations)
        if errors:
            raise InvalidArgument("invalid request", errors)
        assert ctx is not None and detail is not None
        return ctx, detail

    def _check_size(self, msg: Any) -> Any:
        size = len(msg) if isinstance(msg, bytes) else msg.ByteSize()
        if size > self.oracle.limits.max_message_bytes:
            raise self._too_large(str(size))
        return msg

    # -- RPCs -----------------------------------------------------------------------------
    def GetCost(self, request: pb.GetCostRequest, context: grpc.ServicerContext) -> pb.GetCostResponse:
        def run() -> bytes:
            msg, raws = _split(request, repeated=False)
            ctx, detail = self._common(msg)
            self.info.candidates = 1
            if len(raws) > 1:  # a singular field sent in parts: the parts merge (proto semantics)
                merged = spb.Candidate()
                for r in raws:
                    merged.MergeFromString(r)
                raws = [merged.SerializeToString(deterministic=True)]
            item = self._prepare(raws[0] if raws else b"", "candidate")
            data, hit = self._results([item], ctx, detail, ["candidate"], context)[0]
            if hit is None:
                raise convert.status_to_error(pb.CostResult.FromString(data).error)
            self.info.cache_hit = hit
            return data  # CostResult.report and GetCostResponse.report are both field 1

        return self._run("GetCost", request, context, run)

    def GetCostBatch(self, request: pb.GetCostBatchRequest,
                     context: grpc.ServicerContext) -> pb.GetCostBatchResponse:
        def run() -> bytes:
            msg, raws = _split(request)
            ctx, detail = self._common(msg)
            n = len(raws)
            self.info.candidates = n
            self.oracle.check_batch_size(n)
            results = self._batch(raws, ctx, detail, context, max_bytes=self.oracle.limits.max_message_bytes)
            self.info.cache_hit = sum(1 for _, hit in results if hit)
            return self._check_size(b"".join(len_field(_BATCH_RESULTS, data) for data, _ in results))

        return self._run("GetCostBatch", request, context, run)

    def StreamCostBatch(self, request: pb.StreamCostBatchRequest,
                        context: grpc.ServicerContext) -> Iterator[pb.StreamCostBatchResponse]:
        def run() -> Iterator[bytes | pb.StreamCostBatchResponse]:
            msg, raws = _split(request)
            ctx, detail = self._common(msg)
            n = len(raws)
            self.info.candidates = n
            self.oracle.check_batch_size(n)
            if msg.chunk_size < 0:
                raise InvalidArgument("bad chunk size", [("chunk_size", f"must be >= 0, got {msg.chunk_size}")])
            chunk = int(msg.chunk_size or self.oracle.limits.default_chunk_size)
            hits = 0
            for start in range(0, n, chunk):
                items = self._prepare_all(raws[start:start + chunk], offset=start)
                results = self._results(items, ctx, detail,
                                        [f"candidates[{start + i}]" for i in range(len(items))], context)
                hits += sum(1 for _, hit in results if hit)
                self.info.cache_hit = hits
                head = _STREAM_OFFSET + varint(start) + _STREAM_TOTAL + varint(n)
                yield self._check_size(head + b"".join(len_field(_STREAM_RESULTS, data) for data, _ in results))
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
            except OracleError as exc:
                errors.extend(exc.violations)
        if errors:
            raise InvalidArgument("invalid request", errors)
        assert ctx is not None and detail is not None and budget is not None
        self.oracle.search.check_budget(budget, ctx, pareto)
        return ctx, detail, budget, pareto

    def Filter(self, request: pb.FilterRequest, context: grpc.ServicerContext) -> pb.FilterResponse:
        def run() -> pb.FilterResponse:
            msg, raws = _split(request)
            ctx, detail, budget, pareto = self._filter_args(msg)
            n = len(raws)
            self.info.candidates = n
            self.oracle.check_batch_size(n)
            items = self._prepare_all(raws)
            outcome = self.oracle.search.filter_prepared(items, budget, ctx, pareto=pareto,
                                                  include_reports=msg.include_reports, detail=detail,
                                                  deadline=self._deadline(context), is_active=context.is_active)
            resp = pb.FilterResponse(feasible=outcome.feasible, pareto_front=outcome.pareto_front,
                                     measurements=outcome.measurements)
            for item in outcome.results:
                convert.filter_result_to_proto(item, resp.results.add())
            return self._check_size(resp)

        return self._run("Filter", request, context, run)

    def Sweep(self, request: pb.SweepRequest, context: grpc.ServicerContext) -> Iterator[pb.SweepResponse]:
        def run() -> Iterator[pb.SweepResponse]:
            ctx, detail, budget, pareto = self._filter_args(request)
            space = convert.space_from_proto(request)
            if request.chunk_size < 0:
                raise InvalidArgument("bad chunk size", [("chunk_size", f"must be >= 0, got {request.chunk_size}")])
            parts = self.oracle.search.sweep_iter(
                space, budget, ctx, pareto=pareto, include_reports=request.include_reports,
                include_specs=request.include_specs, detail=detail, chunk_size=request.chunk_size or None,
                deadline=self._deadline(context), is_active=context.is_active)
            for part in parts:
                if isinstance(part, SweepChunk):
                    self.info.candidates += len(part.points)
                    resp = pb.SweepResponse(total=part.total)
                    for p in part.points:
                        convert.sweep_point_to_proto(p, resp.points.add())
                    yield self._check_size(resp)
                else:
                    yield pb.SweepResponse(total=part.total, done=True, feasible=part.feasible,
                                           pareto_front=part.pareto_front, measurements=part.measurements,
                                           distinct=part.distinct)

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
            stats["counters"]["candidate_memo_bytes"] = self._candidates.bytes
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

    def FitLatencyModel(self, request: pb.FitLatencyModelRequest,
                        context: grpc.ServicerContext) -> Iterator[pb.FitLatencyModelResponse]:
        def run() -> Iterator[pb.FitLatencyModelResponse]:
            msg, raws = _split(request)
            ctx = convert.context_from_proto(msg.context)
            self.info.candidates = len(raws)
            self.oracle.check_batch_size(len(raws))
            items = self._prepare_all(raws)
            bad = [v for it in items if isinstance(it, OracleError) for v in it.violations]
            if bad:
                raise InvalidArgument("invalid candidates", bad)
            budget_s = msg.budget_minutes * 60.0 if msg.budget_minutes else None
            parts = self.oracle.fit_latency_model(
                items, ctx, max_units=msg.max_units or 400, networks=msg.networks or 30, budget_s=budget_s,
                adaptive=msg.adaptive if msg.HasField("adaptive") else 0.4, seed=msg.seed,
                deadline=self._deadline(context), is_active=context.is_active)
            for part in parts:
                yield convert.fit_progress_to_proto(part)

        return self._stream("FitLatencyModel", request, context, run)


def _result(d: dict[str, Any] | OracleError) -> pb.CostResult:
    if isinstance(d, OracleError):
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
    "FitLatencyModel": ("stream", pb.FitLatencyModelRequest, pb.FitLatencyModelResponse),
}


#: requests whose candidates (field 1 in each) stay serialized until needed
_SPLIT = frozenset({"GetCost", "GetCostBatch", "StreamCostBatch", "Filter", "FitLatencyModel"})


def generic_handler(servicer: CostOracleServicer) -> grpc.GenericRpcHandler:
    """The service's handlers, like the generated ``add_CostOracleServicer_to_server`` but with
    request deserializers that never raise: undecodable bytes become INVALID_ARGUMENT (named as
    such) instead of the INTERNAL that grpc gives a deserializer exception."""
    desc = pb.DESCRIPTOR.services_by_name["CostOracle"]
    assert {m.name for m in desc.methods} == set(_METHODS), "servicer and proto disagree on the RPCs"
    handlers = {}
    for name, (kind, req, _resp) in _METHODS.items():
        fn = getattr(servicer, name)
        make = grpc.unary_unary_rpc_method_handler if kind == "unary" else grpc.unary_stream_rpc_method_handler
        handlers[name] = make(fn, request_deserializer=_parser(req, 1 if name in _SPLIT else None),
                              response_serializer=_serialize)
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)
