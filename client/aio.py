"""``AsyncRemoteOracle``: the asyncio (``grpc.aio``) client — same methods, awaitable, same results.

Meant for controllers that keep many queries in flight from one event loop (``asyncio.gather``
over a population). Requests and responses are built by the same code as the sync client's
(:mod:`cost_oracle.client._wire`); deadlines and the UNAVAILABLE-only retry policy are the same, with
``asyncio.sleep`` between attempts. Create and use it inside one running event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from cost_oracle.client import _wire as wire
from cost_oracle.client.errors import DeadlineExceeded, OracleError
from cost_oracle.client.types import CostResult, FilterOutcome, ItemError, ServerInfo, SweepOutcome
from costoracle.v1 import oracle_pb2 as pb


class AsyncRemoteOracle(wire.RemoteBase):
    """The asyncio twin of :class:`client.remote.RemoteOracle` (same constructor arguments)."""

    _aio = True

    async def _unary(self, method: str, request: Any, deadline: float) -> Any:
        call = getattr(self._stub, method)
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(f"{method}: deadline exceeded after {attempt} attempt(s)")
            try:
                return await call(request, timeout=remaining, metadata=self._metadata)
            except self._grpc.RpcError as exc:
                pause = self._retry_pause(exc, attempt, deadline)
                await asyncio.sleep(pause)
                attempt += 1

    async def _stream(self, method: str, request: Any, deadline: float) -> AsyncIterator[Any]:
        call = getattr(self._stub, method)
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(f"{method}: deadline exceeded after {attempt} attempt(s)")
            received = False
            stream = call(request, timeout=remaining, metadata=self._metadata)
            try:
                async for msg in stream:
                    received = True
                    yield msg
                return
            except self._grpc.RpcError as exc:
                pause = self._retry_pause(exc, attempt, deadline, received)
                await asyncio.sleep(pause)
                attempt += 1
            finally:
                stream.cancel()

    # -- costs -------------------------------------------------------------------------------
    async def cost(self, candidate: Any, *, timeout: float | None = None, **kw: Any) -> CostResult:
        request = wire.cost_request(candidate, kw)
        resp = await self._unary("GetCost", request, self._deadline(timeout, wire.wants_latency(kw)))
        return wire.cost_result(resp.report)

    async def cost_many(self, candidates: Iterable[Any], *, chunk_size: int | None = None,
                        progress: Callable[[int, int], None] | None = None, timeout: float | None = None,
                        **kw: Any) -> list[CostResult | ItemError]:
        context, detail, in_channels = wire.context_and_detail(dict(kw))
        prepared = wire.prepare_many(candidates, in_channels)
        deadline = self._deadline(timeout, wire.wants_latency(kw))
        answered: list[CostResult | ItemError] = []
        stream = bool(progress or chunk_size)
        for start in range(0, len(prepared.valid), self.max_batch):
            part = prepared.valid[start:start + self.max_batch]
            if stream:
                req = pb.StreamCostBatchRequest(candidates=part, context=context, detail=detail,
                                                chunk_size=chunk_size or 0)
                async for msg in self._stream("StreamCostBatch", req, deadline):
                    answered.extend(wire.batch_item(r, start + msg.offset + j) for j, r in enumerate(msg.results))
                    if progress is not None:
                        progress(len(answered) + len(prepared.errors), prepared.total)
            else:
                resp = await self._unary("GetCostBatch", pb.GetCostBatchRequest(candidates=part, context=context,
                                                                               detail=detail), deadline)
                answered.extend(wire.batch_item(r, start + j) for j, r in enumerate(resp.results))
        return wire.merge(prepared, answered)

    async def iter_cost(self, candidates: Iterable[Any], *, chunk_size: int | None = None,
                        progress: Callable[[int, int], None] | None = None, timeout: float | None = None,
                        stream: bool = True, **kw: Any) -> AsyncIterator[tuple[int, CostResult | ItemError]]:
        """(index, result) pairs in input order, as :meth:`client.remote.RemoteOracle.iter_cost`
        (``async for i, r in oracle.iter_cost(...)``)."""
        results = await self.cost_many(candidates, chunk_size=chunk_size if stream else None, progress=progress,
                                       timeout=timeout, **kw)
        for i, r in enumerate(results):
            yield i, r

    async def health(self, *, timeout: float = 3.0) -> bool:
        """Whether the server's standard health service says SERVING (never raises)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            reply = await health_pb2_grpc.HealthStub(self._channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except self._grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    # -- budgets and sweeps ------------------------------------------------------------------
    async def filter(self, candidates: Iterable[Any], budget: Any, pareto: Sequence[str] | str | None = None, *,
                     include_reports: bool = False, timeout: float | None = None, **kw: Any) -> FilterOutcome:
        _, _, in_channels = wire.context_and_detail(dict(kw))
        prepared = wire.prepare_many(candidates, in_channels)
        req = wire.filter_request(prepared.valid, budget, pareto, include_reports, kw)
        latency = getattr(budget, "max_latency_ms", None) is not None or wire.wants_latency(kw)
        resp = await self._unary("Filter", req, self._deadline(timeout, latency))
        return wire.filter_outcome(resp, prepared)

    async def sweep(self, space: Any, budget: Any = None, pareto: Sequence[str] | str | None = None, *,
                    include_reports: bool = False, include_specs: bool = False, chunk_size: int | None = None,
                    progress: Callable[[int, int], None] | None = None, timeout: float | None = None,
                    **kw: Any) -> SweepOutcome:
        req = wire.sweep_request(space, budget, pareto, include_reports, include_specs, chunk_size, kw)
        latency = getattr(budget, "max_latency_ms", None) is not None or wire.wants_latency(kw)
        collector = wire.SweepCollector()
        async for msg in self._stream("Sweep", req, self._deadline(timeout, latency)):
            collector.add(msg)
            if progress is not None and msg.points:
                progress(len(collector.points), collector.total)
        return collector.outcome()

    # -- information -------------------------------------------------------------------------
    async def info(self, *, timeout: float | None = None) -> ServerInfo:
        return wire.server_info(await self._unary("GetServerInfo", pb.GetServerInfoRequest(),
                                                  self._deadline(timeout)))

    async def cache_stats(self, *, timeout: float | None = None) -> dict[str, Any]:
        return wire.message_dict(await self._unary("GetCacheStats", pb.GetCacheStatsRequest(),
                                                   self._deadline(timeout)))

    async def calibrate(self, device: str = "cpu", dtype: str = "float32", threads: int | None = None,
                        refresh: bool = False, *, timeout: float | None = None) -> dict[str, Any]:
        req = pb.CalibrateRequest(device=device, dtype=wire.dtype_enum(dtype, "dtype"), refresh=refresh)
        if threads is not None:
            req.threads = threads
        resp = await self._unary("Calibrate", req, self._deadline(timeout, latency=True))
        return wire.message_dict(resp.calibration)

    async def fit_latency_model(self, candidates: Iterable[Any], *, max_units: int = 400, networks: int = 30,
                                budget_minutes: float | None = None, adaptive: float | None = None, seed: int = 0,
                                progress: Callable[[str, int, int], None] | None = None,
                                timeout: float | None = None, **kw: Any) -> dict[str, Any]:
        """See :meth:`client.remote.RemoteOracle.fit_latency_model`."""
        req = wire.fit_request(list(candidates), kw, max_units, networks, budget_minutes, adaptive, seed)
        deadline = time.monotonic() + wire.fit_deadline_s(budget_minutes, timeout)
        async for msg in self._stream("FitLatencyModel", req, deadline):
            model = wire.fit_message(msg, progress)
            if model is not None:
                return model
        raise OracleError("the server ended the fit without a model")

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncRemoteOracle:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
