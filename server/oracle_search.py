"""The oracle's search: which candidates fit a budget, and sweeps of a space against one.

Built on the cost path rather than inside it: a filter or a sweep costs its candidates exactly
as ``cost_batch`` does (same cache keys, same errors) and then decides — the analytic limits for
every candidate first, latency only for the survivors, grouped by their settings so one queue
times them together. The oracle holds one :class:`Search`, given what it uses: the oracle's cost
path (:class:`CostPath`: request checks, ``prepare``, ``full_reports``, ``serve``), its
:class:`Latency` and its limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from cost_engine.spec.base import FieldError, SpecError, validate
from cost_engine.spec.network import NetworkSpec
from cost_oracle.contract.budget import (
    LATENCY_LIMIT,
    PARETO_FIELDS,
    Budget,
    analytic_constraints,
    latency_constraint,
    pareto_front,
)
from cost_oracle.contract.errors import (
    FailedPrecondition,
    InvalidArgument,
    OracleError,
    ResourceExhausted,
    invalid,
    join_path,
)
from cost_oracle.contract.results import (
    CostResult,
    FilterOutcome,
    FilterResult,
    ItemError,
    SweepChunk,
    SweepOutcome,
    SweepPoint,
)
from cost_oracle.contract.spaces import EfficientNetCompoundSpace, FasterNetSpace, MultiplierSpace, Space
from cost_oracle.contract.types import Candidate, Context, Limits
from cost_oracle.server.cancel import checkpoint
from cost_oracle.server.candidates import Prepared
from cost_oracle.server.latency_groups import settings_id
from cost_oracle.server.oracle_latency import Latency, latency_dict, latency_error

#: predictions a latency filter submits to the measurement queue before waiting on them
PREDICT_CHUNK = 16

__all__ = ["CostPath", "Search"]


@dataclass
class GeneratedPoint:
    """One point of a space: its coordinates, a label, and its validated spec or why it has none."""

    index: int
    params: dict[str, float]
    label: str
    spec: NetworkSpec | None
    error: SpecError | None


@dataclass
class _Verdict:
    """A candidate's verdict while the search decides it (latency may still change it); it
    becomes a :class:`FilterResult` once decided. ``values``: the figures a Pareto front may use."""

    index: int
    feasible: bool
    constraints: list[Any] = field(default_factory=list)
    violated: list[str] = field(default_factory=list)
    error: OracleError | None = None
    report: dict[str, Any] | None = None
    decided_by: str = "analytic"
    values: dict[str, float] = field(default_factory=dict)

    def result(self, front: set[int]) -> FilterResult:
        return FilterResult(
            index=self.index, feasible=self.feasible, constraints=tuple(self.constraints),
            violated=tuple(self.violated),
            error=None if self.error is None else ItemError.of(self.index, self.error),
            report=None if self.report is None else CostResult.from_dict(self.report),
            pareto=self.index in front, decided_by=self.decided_by)


def expand_space(space: Space) -> Iterator[GeneratedPoint]:
    """Every point of ``space`` in grid order (call ``space.validate()`` and bound ``size()`` first);
    the request's deadline and cancellation are checked between points."""
    for index, (params, label, make) in enumerate(space.points()):
        checkpoint()
        spec: NetworkSpec | None = None
        error: SpecError | None = None
        try:
            spec = make()
            problems = validate(spec)
            if problems:
                error = SpecError(problems)
                spec = None
        except SpecError as exc:
            error = exc
        except (ValueError, TypeError, ArithmeticError) as exc:  # a family rejecting its arguments
            error = SpecError([FieldError("", str(exc))])
        yield GeneratedPoint(index, dict(params), label, spec, error)


class CostPath(Protocol):
    """What a search needs of the oracle's cost path: its request checks, preparing candidates,
    their stored or computed reports, and a report as served."""

    def check_context(self, ctx: Context, path: str = "context") -> None: ...
    def check_detail(self, detail: str, path: str = "detail") -> None: ...
    def check_batch_size(self, n: int, path: str = "candidates") -> None: ...
    def check_device(self, ctx: Context, path: str = "context") -> None: ...
    def prepare(self, candidate: Candidate, path: str = "candidate", *, validated: bool = False) -> Prepared: ...
    def prepare_all(self, candidates: Sequence[Candidate], path: str) -> list[Prepared | OracleError]: ...
    def full_reports(self, items: Sequence[Prepared | OracleError], ctx: Context,
                     paths: Sequence[str] | None = None) -> list[Any]: ...
    def serve(self, report: dict[str, Any], item: Prepared, ctx: Context, key: str, hit: bool,
              detail: str) -> dict[str, Any]: ...


class Search:
    """Filters and sweeps on a cost path (the oracle's), with latency from the oracle's
    :class:`Latency` for the candidates that need it."""

    def __init__(self, costs: CostPath, latency: Latency, limits: Limits):
        self.costs = costs
        self.latency = latency
        self.limits = limits

    # -- budgets --------------------------------------------------------------------------
    def check_budget(self, budget: Budget, ctx: Context, pareto: Sequence[str]) -> None:
        if not isinstance(budget, Budget):
            raise InvalidArgument("bad budget", [("budget", f"must be a Budget, got {type(budget).__name__}")])
        errors = budget.validate()
        for i, name in enumerate(pareto):
            if name not in PARETO_FIELDS:
                errors.append((f"pareto_fields[{i}]", f"must be one of {', '.join(PARETO_FIELDS)}; got {name!r}"))
            elif name == "latency_ms" and budget.max_latency_ms is None and not ctx.wants_latency:
                errors.append((f"pareto_fields[{i}]", "latency_ms needs budget.max_latency_ms or context.latency"))
        if errors:
            raise InvalidArgument("invalid budget", errors)
        if budget.max_latency_ms is not None:
            self.costs.check_device(ctx)

    def filter(self, candidates: Sequence[Candidate], budget: Budget, context: Context | None = None, *,
               pareto: Sequence[str] = (), include_reports: bool = False, detail: str = "scalars",
               deadline: float | None = None, is_active: Callable[[], bool] | None = None) -> FilterOutcome:
        """Which candidates fit ``budget``: analytic limits for all, latency only for the survivors."""
        ctx = context or Context()
        self.costs.check_context(ctx)
        self.costs.check_detail(detail)
        self.check_budget(budget, ctx, pareto)
        candidates = list(candidates)
        self.costs.check_batch_size(len(candidates))
        items = self.costs.prepare_all(candidates, "candidates")
        return self.filter_prepared(items, budget, ctx, pareto=pareto, include_reports=include_reports,
                                    detail=detail, deadline=deadline, is_active=is_active)

    def filter_prepared(self, items: Sequence[Prepared | OracleError], budget: Budget, ctx: Context, *,
                        pareto: Sequence[str] = (), include_reports: bool = False, detail: str = "scalars",
                        deadline: float | None = None,
                        is_active: Callable[[], bool] | None = None) -> FilterOutcome:
        verdicts, measurements = self._verdicts(items, budget, ctx, pareto=pareto, include_reports=include_reports,
                                                detail=detail, deadline=deadline, is_active=is_active)
        front = self.front(verdicts, pareto) if pareto else []
        chosen = set(front)
        return FilterOutcome(results=tuple(v.result(chosen) for v in verdicts),
                             feasible=tuple(v.index for v in verdicts if v.feasible), pareto_front=tuple(front),
                             measurements=measurements)

    def _verdicts(self, items: Sequence[Prepared | OracleError], budget: Budget, ctx: Context, *,
                  pareto: Sequence[str] = (), include_reports: bool, detail: str, offset: int = 0,
                  paths: Sequence[str] | None = None,
                  deadline: float | None, is_active: Callable[[], bool] | None) -> tuple[list[_Verdict], int]:
        """Each candidate decided (indexes from ``offset``), and how many measurements that took."""
        actx = ctx.analytic()
        full = self.costs.full_reports(items, actx, paths)
        results: list[_Verdict] = []
        survivors: list[int] = []
        for i, got in enumerate(full):
            if isinstance(got, OracleError):
                results.append(_Verdict(offset + i, False, error=got, decided_by="error"))
                continue
            report, key, hit = got
            cons = analytic_constraints(budget, report)
            item = _Verdict(offset + i, all(c.value <= 0 for c in cons), cons,
                            [c.name for c in cons if c.value > 0], decided_by="analytic",
                            values={f: float(report[f]) for f in PARETO_FIELDS if f in report})
            if include_reports:
                prepared = items[i]
                assert isinstance(prepared, Prepared)
                item.report = self.costs.serve(report, prepared, actx, key, hit, detail)
            results.append(item)
            if item.feasible:
                survivors.append(i)
        measurements = 0
        need_latency = budget.max_latency_ms is not None or (ctx.wants_latency and (include_reports
                                                                                   or "latency_ms" in pareto))
        if survivors and need_latency:
            measurements = self._latency_filter(items, results, survivors, budget, ctx, deadline, is_active)
        return results, measurements

    @staticmethod
    def front(results: Sequence[_Verdict], pareto: Sequence[str]) -> list[int]:
        cands = [r for r in results if r.feasible and all(p in r.values for p in pareto)]
        pts = [[r.values[p] for p in pareto] for r in cands]
        return sorted(cands[j].index for j in pareto_front(pts))

    def _latency_filter(self, items: Sequence[Prepared | OracleError], results: list[_Verdict],
                        survivors: list[int], budget: Budget, ctx: Context, deadline: float | None,
                        is_active: Callable[[], bool] | None) -> int:
        """Latency for the analytic survivors; returns the number of measurements it needed."""
        prepared = [items[i] for i in survivors]
        assert all(isinstance(p, Prepared) for p in prepared)
        if budget.max_latency_ms is None:
            lats = self.latency.latency_of(prepared, ctx, deadline=deadline, is_active=is_active)
            measured = 0
            for i, lat in zip(survivors, lats, strict=True):
                self._set_latency(results[i], lat, None)
                measured += bool(lat and not isinstance(lat, OracleError) and lat.get("source") == "measured"
                                 and not lat.get("cached"))
            return measured
        from cost_engine.latency import UnknownDevice, filter_by_latency

        q = self.latency.latency_queue()
        # one settings object per survivor (block candidates differ in in_channels)
        settings = [self.latency.latency_settings(p, ctx) for p in prepared]  # type: ignore[arg-type]
        groups: dict[Any, list[int]] = {}
        for j, s in enumerate(settings):
            groups.setdefault(settings_id(s), []).append(j)
        total_measurements = 0
        for members in groups.values():
            s = settings[members[0]]
            cands = [prepared[j].candidate for j in members]  # type: ignore[union-attr]

            def wait(futures: list[Any]) -> list[Any]:
                timeout = None if deadline is None else max(0.0, deadline - time.time())
                with self.latency.waiting_on(futures):
                    return [f.result(timeout=timeout) for f in futures]

            def measurer(cs: list[Any], st: Any) -> list[Any]:
                # every measurement goes through the device's queue (one at a time, coalesced); each
                # batch of close calls (all of them when fewer than 2 x probe.PROBE, else the probe
                # and then its rounds: within the queue's default bound) is timed in shared sessions
                return wait(q.submit_many(cs, st, deadline=deadline, is_active=is_active))

            def predictor(cs: list[Any], st: Any) -> list[Any]:
                # a chunk at a time: a prediction that needs something timed first (the device's
                # calibration, a block) queues a job, and 200 of them would overrun the queue's
                # bound although the first one's measurement serves them all
                out: list[Any] = []
                for start in range(0, len(cs), PREDICT_CHUNK):
                    out += wait([q.submit_prediction(c, st, method=ctx.latency_method, deadline=deadline,
                                                     is_active=is_active, measure=not ctx.never_measure)
                                 for c in cs[start:start + PREDICT_CHUNK]])
                return out

            try:
                res = filter_by_latency(cands, float(budget.max_latency_ms), s, cache=self.latency.cache,
                                        measure_all=budget.measure_all, method=ctx.latency_method,
                                        measurer=measurer, predictor=predictor)
            except UnknownDevice as exc:
                raise FailedPrecondition(str(exc), [("context.device", str(exc))]) from None
            except SpecError as exc:
                raise invalid([(join_path("context", e.path), e.reason)
                                                 for e in exc.errors]) from None
            except OracleError:
                raise
            except Exception as exc:  # queue full, dropped, measurement failure
                raise latency_error(exc, "context") from None
            total_measurements += int(res.measurements)
            for d in res.decisions:
                j = members[int(d["index"])]
                lat = d.get("latency")
                self._set_latency(results[survivors[j]], latency_dict(lat) if lat is not None else None, budget,
                                  decided_by=str(d.get("reason", "predicted")), feasible=bool(d.get("feasible")))
        return total_measurements

    @staticmethod
    def _set_latency(item: _Verdict, lat: dict[str, Any] | OracleError | None, budget: Budget | None, *,
                     decided_by: str | None = None, feasible: bool | None = None) -> None:
        if isinstance(lat, OracleError):
            item.error, item.feasible, item.decided_by = lat, False, "error"
            return
        if lat is None:
            return
        item.values["latency_ms"] = float(lat["median_ms"])
        if item.report is not None:
            item.report["latency"] = lat
            item.report["sources"] = {**item.report["sources"], "latency": lat["source"]}
        if budget is not None and budget.max_latency_ms is not None:
            c = latency_constraint(budget, float(lat["median_ms"]))
            item.constraints.append(c)
            ok = feasible if feasible is not None else c.value <= 0
            if not ok and LATENCY_LIMIT not in item.violated:
                item.violated.append(LATENCY_LIMIT)
            item.feasible = item.feasible and ok
            item.decided_by = decided_by or lat.get("source", "predicted")

    # -- sweeps ---------------------------------------------------------------------------
    def check_space(self, space: Space) -> int:
        if not isinstance(space, (EfficientNetCompoundSpace, MultiplierSpace, FasterNetSpace)):
            raise InvalidArgument("bad sweep space", [("space", "must be an efficientnet_compound, multipliers or "
                                                                "fasternet space")])
        errors = space.validate()
        if errors:
            raise InvalidArgument("invalid sweep space", errors)
        n = space.size()
        if n > self.limits.max_sweep_size:
            raise ResourceExhausted(f"{space.name}: {n} points is over the server's limit of "
                                    f"{self.limits.max_sweep_size} per sweep; narrow the grid",
                                    quota="max_sweep_size")
        return n

    def sweep_iter(self, space: Space, budget: Budget | None = None, context: Context | None = None, *,
                   pareto: Sequence[str] = (), include_reports: bool = False, include_specs: bool = False,
                   detail: str = "scalars", chunk_size: int | None = None, deadline: float | None = None,
                   is_active: Callable[[], bool] | None = None) -> Iterator[SweepChunk | SweepOutcome]:
        """Chunks of costed points, then one :class:`SweepOutcome` (with empty ``points``) as the summary."""
        budget = budget or Budget()
        ctx = context or Context()
        self.costs.check_context(ctx)
        self.costs.check_detail(detail)
        self.check_budget(budget, ctx, pareto)
        total = self.check_space(space)
        chunk = max(1, int(chunk_size or self.limits.default_chunk_size))
        decided: list[_Verdict] = []  # each point's index, feasibility and figures (for the summary and the front)
        measurements = 0
        pending: list[Any] = []
        first_of: dict[str, int] = {}  # cache key -> the first point that generates it
        duplicates: set[int] = set()

        def run(batch: list[Any]) -> SweepChunk:
            nonlocal measurements
            items: list[Prepared | OracleError] = []
            paths = []
            for pt in batch:
                paths.append(f"{space.name}[{pt.index}]")
                if pt.error is not None:
                    items.append(InvalidArgument(f"point {pt.label}: {pt.error}",
                                                 [(join_path(space.name, e.path) if e.path else space.name,
                                                   f"{pt.label}: {e.reason}") for e in pt.error.errors]))
                else:
                    items.append(self.costs.prepare(pt.spec, paths[-1], validated=True))
            verdicts, measured = self._verdicts(items, budget, ctx, include_reports=include_reports, detail=detail,
                                                offset=batch[0].index, paths=paths, deadline=deadline,
                                                is_active=is_active)
            measurements += measured
            decided.extend(_Verdict(v.index, v.feasible, values=v.values) for v in verdicts)
            points = []
            for pt, item, v in zip(batch, items, verdicts, strict=True):
                dup = None
                if isinstance(item, Prepared):
                    dup = first_of.setdefault(item.key(ctx), pt.index)
                    if dup == pt.index:
                        dup = None
                    else:
                        duplicates.add(pt.index)
                spec = pt.spec.to_dict() if include_specs and pt.spec is not None else None
                points.append(SweepPoint(pt.index, dict(pt.params), pt.label, v.result(set()), spec, dup))
            return SweepChunk(total, tuple(points))

        for pt in expand_space(space):
            pending.append(pt)
            if len(pending) >= chunk:
                yield run(pending)
                pending = []
        if pending:
            yield run(pending)
        # the front over distinct networks: a duplicate point is the same network again
        front_idx = self.front([v for v in decided if v.index not in duplicates], pareto) if pareto else []
        yield SweepOutcome(total, (), tuple(v.index for v in decided if v.feasible), tuple(front_idx), measurements,
                           distinct=len(decided) - len(duplicates))

    def sweep(self, space: Space, budget: Budget | None = None, context: Context | None = None, *,
              pareto: Sequence[str] = (), include_reports: bool = False, include_specs: bool = False,
              detail: str = "scalars", progress: Callable[[int, int], None] | None = None) -> SweepOutcome:
        """The whole sweep at once (``progress(done, total)`` after every chunk)."""
        points: list[SweepPoint] = []
        summary: SweepOutcome | None = None
        for part in self.sweep_iter(space, budget, context, pareto=pareto, include_reports=include_reports,
                                    include_specs=include_specs, detail=detail):
            if isinstance(part, SweepChunk):
                points.extend(part.points)
                if progress is not None:
                    progress(len(points), part.total)
            else:
                summary = part
        assert summary is not None
        front = set(summary.pareto_front)
        return replace(summary, points=tuple(replace(p, result=replace(p.result, pareto=True)) if p.index in front
                                             else p for p in points))
