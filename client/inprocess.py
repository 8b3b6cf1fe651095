"""``InProcessOracle``: the oracle without a server — same API, same cache, same answers.

It wraps the transport-free core the gRPC server itself runs (``cost_oracle.server.oracle.Oracle``), so the
validation, the cache keys, the error codes and field paths, and the report keys are identical
to a remote call's by construction. Point it at the server's cache (``db_url`` or
``$COST_ORACLE_DB_URL``; by default the same SQLite file under the user cache directory) and a
candidate one side computed is a cache hit on the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from cost_oracle.client.base import (
    as_candidate,
    budget_or_default,
    make_context,
    merge_costs,
    merge_filter,
    oracle_error,
    pareto_names,
    split,
    split_kwargs,
)
from cost_oracle.client.errors import InvalidArgument, OracleError
from cost_oracle.client.types import CostResult, FilterOutcome, ItemError, ServerInfo, SweepOutcome
from costoracle.v1 import oracle_pb2 as pb


class InProcessOracle:
    """The cost oracle in this process; ``db_url`` selects the cache (SQLite path/URL or PostgreSQL URL).

    ``cache`` may be an existing ``cost_oracle.server.cache.CostCache`` to share between oracles. Thread-safe.
    """

    def __init__(self, db_url: str | None = None, *, cache: Any = None, limits: Any = None):
        from cost_oracle.server.oracle import Oracle  # the server loads only when this mode is used

        try:
            self._core = Oracle(db_url, cache=cache, limits=limits)
        except OracleError as exc:
            raise oracle_error(exc) from None

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OracleError as exc:
            raise oracle_error(exc) from None

    # -- costs -------------------------------------------------------------------------------
    def cost(self, candidate: Any, **kw: Any) -> CostResult:
        """Every cost of one candidate; raises a typed ``OracleError`` (``InvalidArgument`` for a bad field)."""
        ctx, detail, in_channels = split_kwargs(kw)
        report = self._call(self._core.cost, as_candidate(candidate, in_channels), make_context(**ctx),
                            detail=detail or "full")
        return CostResult.from_dict(report)

    def cost_many(self, candidates: Iterable[Any], *, chunk_size: int | None = None, progress: Any = None,
                  **kw: Any) -> list[CostResult | ItemError]:
        """Results in input order; a bad candidate is an ``ItemError`` in its place."""
        ctx, detail, in_channels = split_kwargs(kw)
        context = make_context(**ctx)
        parts = split(candidates, in_channels)
        step = max(1, chunk_size or 1024)
        answered: list[CostResult | ItemError] = []
        for start in range(0, len(parts.valid), step):
            got = self._call(self._core.cost_batch, parts.valid[start:start + step], context,
                             detail=detail or "full")
            answered.extend(ItemError.of(i, r) if isinstance(r, OracleError) else CostResult.from_dict(r)
                            for i, r in enumerate(got, start))
            if progress is not None:
                progress(len(answered) + len(parts.errors), parts.total)
        return merge_costs(parts, answered)

    def iter_cost(self, candidates: Iterable[Any], *, chunk_size: int | None = None, progress: Any = None,
                  stream: bool = True, **kw: Any) -> Iterator[tuple[int, CostResult | ItemError]]:
        """(index, result) pairs in input order, as the remote clients' ``iter_cost``."""
        yield from enumerate(self.cost_many(candidates, chunk_size=chunk_size, progress=progress, **kw))

    def health(self, *, timeout: float = 3.0) -> bool:
        """Whether this oracle can answer: its cache database is reachable (never raises)."""
        try:
            self._core.cache.stats()
        except Exception:
            return False
        return True

    # -- budgets and sweeps ------------------------------------------------------------------
    def filter(self, candidates: Iterable[Any], budget: Any, pareto: Sequence[str] | str | None = None, *,
               include_reports: bool = False, **kw: Any) -> FilterOutcome:
        """Which candidates fit ``budget``: analytic limits for all, latency only for the survivors."""
        ctx, detail, in_channels = split_kwargs(kw)
        context = make_context(**ctx)
        parts = split(candidates, in_channels)
        out = self._call(self._core.filter, parts.valid, budget_or_default(budget), context,
                         pareto=pareto_names(pareto), include_reports=include_reports, detail=detail or "scalars")
        return merge_filter(parts, out)

    def sweep(self, space: Any, budget: Any = None, pareto: Sequence[str] | str | None = None, *,
              include_reports: bool = False, include_specs: bool = False, progress: Any = None,
              **kw: Any) -> SweepOutcome:
        """Every point of ``space`` (a ``cost_oracle.contract.spaces`` space), costed under ``budget``."""
        ctx, detail, _ = split_kwargs(kw)
        out = self._call(self._core.sweep, space, budget_or_default(budget), make_context(**ctx),
                         pareto=pareto_names(pareto), include_reports=include_reports, include_specs=include_specs,
                         detail=detail or "scalars", progress=progress)
        return out

    # -- information ---------------------------------------------------------------------------
    def info(self) -> ServerInfo:
        return ServerInfo(self._call(self._core.info))

    def cache_stats(self) -> dict[str, Any]:
        return self._call(self._core.cache_stats)

    def calibrate(self, device: str = "cpu", dtype: str = "float32", threads: int | None = None,
                  refresh: bool = False) -> dict[str, Any]:
        """Device ceilings for roofline prediction, with the keys a remote oracle answers (``Calibration``)."""

        out = self._call(self._core.calibrate, device, dtype, threads, refresh)
        return {f.name: out.get(f.name) for f in pb.Calibration.DESCRIPTOR.fields if f.name in out}

    def fit_latency_model(self, candidates: Iterable[Any], *, max_units: int = 400, networks: int = 30,
                          budget_minutes: float | None = None, adaptive: float | None = None, seed: int = 0,
                          progress: Any = None, **kw: Any) -> dict[str, Any]:
        """Profile this machine's kernels over ``candidates`` and fit the kernel latency model
        (see :meth:`client.remote.RemoteOracle.fit_latency_model`); the ``KernelModel`` fields."""
        ctx, _, _ = split_kwargs(kw)
        context = make_context(**ctx)

        def prepared() -> list[Any]:
            items, bad = [], []
            for i, c in enumerate(candidates):
                try:
                    items.append(self._core.prepare(as_candidate(c, None), f"candidates[{i}]"))
                except OracleError as exc:
                    bad.extend(exc.violations)
            if bad:
                raise InvalidArgument("invalid candidates", bad)
            return items

        def run() -> dict[str, Any]:
            parts = self._core.fit_latency_model(
                prepared(), context, max_units=max_units, networks=networks,
                budget_s=budget_minutes * 60.0 if budget_minutes else None,
                adaptive=0.4 if adaptive is None else adaptive, seed=seed)
            for part in parts:
                if "model" in part:
                    return dict(part["model"])
                if progress is not None:
                    progress(part["phase"], part["done"], part["total"])
            raise RuntimeError("the fit ended without a model")

        return self._call(run)

    def close(self) -> None:
        self._core.close()

    def __enter__(self) -> InProcessOracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

