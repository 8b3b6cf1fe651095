"""``RemoteOracle``: the synchronous gRPC client of the cost oracle.

Every call has a deadline (``timeout`` per call, else the client default; calls that measure
latency default to a longer one). Only UNAVAILABLE — the one code the server uses for transient
states, and what a not-yet-listening or restarting server gives — is retried, with exponential
backoff and jitter, within the call's deadline; a streamed call is retried only before its first
message arrived, so no result is ever delivered twice. Everything else raises at once as a typed
:class:`client.errors.OracleError` carrying the code and the field violations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from cost_oracle.client import _wire as wire
from cost_oracle.client.errors import DeadlineExceeded, OracleError
from cost_oracle.client.types import CostResult, FilterOutcome, ItemError, ServerInfo, SweepOutcome
from costoracle.v1 import oracle_pb2 as pb


class RemoteOracle(wire.RemoteBase):
    """A cost oracle across the network (``target`` = ``"host:port"``).

    ``token``: bearer token (sent as ``authorization`` metadata). ``tls``: ``False`` (plaintext),
    ``True`` (system roots), PEM bytes or a path of the root certificate, or ``grpc.ChannelCredentials``.
    ``timeout``: default per-call deadline in seconds; ``retries``: extra attempts on UNAVAILABLE.
    """

    _aio = False

    # -- transport -------------------------------------------------------------------------
    def _unary(self, method: str, request: Any, deadline: float) -> Any:
        call = getattr(self._stub, method)
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(f"{method}: deadline exceeded after {attempt} attempt(s)")
            try:
                return call(request, timeout=remaining, metadata=self._metadata)
            except self._grpc.RpcError as exc:
                pause = self._retry_pause(exc, attempt, deadline)
                time.sleep(pause)
                attempt += 1

    def _stream(self, method: str, request: Any, deadline: float) -> Iterator[Any]:
        """Messages of a server stream; retried on UNAVAILABLE only until the first one arrived."""
        call = getattr(self._stub, method)
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(f"{method}: deadline exceeded after {attempt} attempt(s)")
            received = False
            stream = call(request, timeout=remaining, metadata=self._metadata)
            try:
                for msg in stream:
                    received = True
                    yield msg
                return
            except self._grpc.RpcError as exc:
                pause = self._retry_pause(exc, attempt, deadline, received)
                time.sleep(pause)
                attempt += 1
            finally:
                stream.cancel()

    # -- costs -------------------------------------------------------------------------------
    def cost(self, candidate: Any, *, timeout: float | None = None, **kw: Any) -> CostResult:
        """Every cost of one candidate (keywords: see :class:`client.base.Oracle`)."""
        request = wire.cost_request(candidate, kw)
        resp = self._unary("GetCost", request, self._deadline(timeout, wire.wants_latency(kw)))
        return wire.cost_result(resp.report)

    def cost_many(self, candidates: Iterable[Any], *, chunk_size: int | None = None,
                  progress: Callable[[int, int], None] | None = None, timeout: float | None = None,
                  **kw: Any) -> list[CostResult | ItemError]:
        """Results in input order, a bad candidate an ``ItemError`` in its place.

        With ``progress`` or ``chunk_size`` the server streams results in chunks
        (``StreamCostBatch``); batches over ``max_batch`` go as several requests.
        """
        return list(r for _, r in self.iter_cost(candidates, chunk_size=chunk_size, progress=progress,
                                                 timeout=timeout, stream=bool(progress or chunk_size), **kw))

    def iter_cost(self, candidates: Iterable[Any], *, chunk_size: int | None = None,
                  progress: Callable[[int, int], None] | None = None, timeout: float | None = None,
                  stream: bool = True, **kw: Any) -> Iterator[tuple[int, CostResult | ItemError]]:
        """(index, result) pairs in input order, once the batch is answered (streamed from the server in
        chunks when ``stream``; ``progress`` follows the chunks)."""
        context, detail, in_channels = wire.context_and_detail(dict(kw))
        prepared = wire.prepare_many(candidates, in_channels)
        deadline = self._deadline(timeout, wire.wants_latency(kw))
        done = 0
        answered: list[CostResult | ItemError] = []
        for start in range(0, len(prepared.valid), self.max_batch):
            part = prepared.valid[start:start + self.max_batch]
            if stream:
                req = pb.StreamCostBatchRequest(candidates=part, context=context, detail=detail,
                                                chunk_size=chunk_size or 0)
                for msg in self._stream("StreamCostBatch", req, deadline):
                    for j, r in enumerate(msg.results):
                        answered.append(wire.batch_item(r, start + msg.offset + j))
                    if progress is not None:
                        progress(len(answered) + len(prepared.errors), prepared.total)
            else:
                resp = self._unary("GetCostBatch", pb.GetCostBatchRequest(candidates=part, context=context,
                                                                         detail=detail), deadline)
                answered.extend(wire.batch_item(r, start + j) for j, r in enumerate(resp.results))
        for i, r in enumerate(wire.merge(prepared, answered)):
            done += 1
            yield i, r
        if progress is not None and not prepared.valid:
            progress(done, prepared.total)

    # -- budgets and sweeps ------------------------------------------------------------------
    def filter(self, candidates: Iterable[Any], budget: Any, pareto: Sequence[str] | str | None = None, *,
               include_reports: bool = False, timeout: float | None = None, **kw: Any) -> FilterOutcome:
        """Which candidates fit ``budget`` (analytic limits first, latency only for survivors)."""
        _, _, in_channels = wire.context_and_detail(dict(kw))
        prepared = wire.prepare_many(candidates, in_channels)
        req = wire.filter_request(prepared.valid, budget, pareto, include_reports, kw)
        latency = getattr(budget, "max_latency_ms", None) is not None or wire.wants_latency(kw)
        resp = self._unary("Filter", req, self._deadline(timeout, latency))
        return wire.filter_outcome(resp, prepared)

    def sweep(self, space: Any, budget: Any = None, pareto: Sequence[str] | str | None = None, *,
              include_reports: bool = False, include_specs: bool = False, chunk_size: int | None = None,
              progress: Callable[[int, int], None] | None = None, timeout: float | None = None,
              **kw: Any) -> SweepOutcome:
        """Every point of ``space`` (expanded by the server), costed under ``budget``."""
        req = wire.sweep_request(space, budget, pareto, include_reports, include_specs, chunk_size, kw)
        latency = getattr(budget, "max_latency_ms", None) is not None or wire.wants_latency(kw)
        collector = wire.SweepCollector()
        for msg in self._stream("Sweep", req, self._deadline(timeout, latency)):
            collector.add(msg)
            if progress is not None and msg.points:
                progress(len(collector.points), collector.total)
        return collector.outcome()

    # -- information -------------------------------------------------------------------------
    def info(self, *, timeout: float | None = None) -> ServerInfo:
        return wire.server_info(self._unary("GetServerInfo", pb.GetServerInfoRequest(), self._deadline(timeout)))

    def cache_stats(self, *, timeout: float | None = None) -> dict[str, Any]:
        return wire.message_dict(self._unary("GetCacheStats", pb.GetCacheStatsRequest(), self._deadline(timeout)))

    def calibrate(self, device: str = "cpu", dtype: str = "float32", threads: int | None = None,
                  refresh: bool = False, *, timeout: float | None = None) -> dict[str, Any]:
        req = pb.CalibrateRequest(device=device, dtype=wire.dtype_enum(dtype, "dtype"), refresh=refresh)
        if threads is not None:
            req.threads = threads
        resp = self._unary("Calibrate", req, self._deadline(timeout, latency=True))
        return wire.message_dict(resp.calibration)

    def fit_latency_model(self, candidates: Iterable[Any], *, max_units: int = 400, networks: int = 30,
                          budget_minutes: float | None = None, adaptive: float | None = None, seed: int = 0,
                          progress: Callable[[str, int, int], None] | None = None, timeout: float | None = None,
                          **kw: Any) -> dict[str, Any]:
        """Profile the device's kernels over ``candidates`` (the search space) and fit the kernel
        latency model on the server; ``progress(phase, done, total)`` as it goes. Returns the
        ``KernelModel`` fields. Afterwards predictions with no method named use it."""
        req = wire.fit_request(list(candidates), kw, max_units, networks, budget_minutes, adaptive, seed)
        deadline = time.monotonic() + wire.fit_deadline_s(budget_minutes, timeout)
        for msg in self._stream("FitLatencyModel", req, deadline):
            model = wire.fit_message(msg, progress)
            if model is not None:
                return model
        raise OracleError("the server ended the fit without a model")

    def health(self, *, timeout: float = 3.0) -> bool:
        """Whether the server's standard health service says SERVING (never raises)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            reply = health_pb2_grpc.HealthStub(self._channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                                    timeout=timeout)
        except self._grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RemoteOracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["OracleError", "RemoteOracle"]
