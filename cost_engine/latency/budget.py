"""Latency budgets: which candidates meet a latency limit, timing as few of them as possible.

Order of decisions, cheapest first:

1. ``analytic(candidate)`` — the caller's static limits (FLOPs, params, memory): a candidate that
   fails them is out, and is never predicted or timed.
2. A prediction with its uncertainty: when ``median - z*u > limit`` the candidate is out, when
   ``median + z*u <= limit`` it is in — the prediction decides.
3. Only candidates whose prediction is within ``z`` uncertainties of the limit — too close to
   call — are measured (all survivors when ``measure_all``), in one batch of sessions, and the
   measured median decides.

With ``z`` = 2 and an honest uncertainty the prediction decides wrongly for ~2% of the
candidates near the limit at most; the test and the benchmark compare against measuring all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cost_engine.latency.measure import measure_many
from cost_engine.latency.predict import predict_many
from cost_engine.latency.result import LatencyResult
from cost_engine.latency.settings import LatencySettings
from cost_engine.spec.base import FieldError, Spec, SpecError

Measurer = Callable[[list[Any], LatencySettings], list[LatencyResult]]
Predictor = Callable[[list[Any], LatencySettings], list[LatencyResult]]


@dataclass
class LatencyBudgetResult:
    limit_ms: float
    feasible: list[int]
    measurements: int  # new timings run for this decision (not served from the cache)
    measured: int  # candidates decided by a measurement (cached or new)
    predicted: int  # candidates decided by their prediction alone
    analytic_rejected: int
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"limit_ms": self.limit_ms, "feasible": list(self.feasible), "measurements": self.measurements,
                "measured": self.measured, "predicted": self.predicted, "analytic_rejected": self.analytic_rejected,
                "decisions": self.decisions}


def decision_band(p: LatencyResult, z: float) -> tuple[float, float]:
    """The prediction's interval at ``z``: multiplicative when the model states a log-scale
    spread (the kernel model: its errors are relative), else ``median +- z * uncertainty``."""
    sigma = p.details.get("log_sigma") if p.details else None
    if sigma is not None:
        return p.median_ms * math.exp(-z * sigma), p.median_ms * math.exp(z * sigma)
    band = z * p.uncertainty_ms
    return p.median_ms - band, p.median_ms + band


def filter_by_latency(candidates: Sequence[Spec | str], limit_ms: float, settings: LatencySettings | None = None, *,
                      cache: Any = None, measure_all: bool = False, method: str = "default",
                      analytic: Callable[[Any], bool] | None = None, measurer: Measurer | None = None,
                      predictor: Predictor | None = None, z: float = 2.0,
                      sessions: int = 3, time_cap_s: float | None = None) -> LatencyBudgetResult:
    """Indices (input order) of the candidates whose latency is at most ``limit_ms``.

    ``measurer(candidates, settings) -> results`` and ``predictor(candidates, settings) ->
    results`` replace the in-process defaults (e.g. to go through the server's measurement
    queue); both take and return lists, so a batch is timed in shared sessions.
    """
    if not isinstance(limit_ms, (int, float)) or isinstance(limit_ms, bool) or not limit_ms > 0:
        raise SpecError([FieldError("latency_limit_ms", f"must be a positive number, got {limit_ms!r}")])
    settings = settings or LatencySettings()
    settings.validate()
    if measurer is None:
        def measurer(cs: list[Any], s: LatencySettings) -> list[LatencyResult]:
            return measure_many(cs, s, cache=cache, sessions=sessions, time_cap_s=time_cap_s)
    if predictor is None:
        def predictor(cs: list[Any], s: LatencySettings) -> list[LatencyResult]:
            return predict_many(cs, s, method=method, cache=cache)

    decisions: list[dict[str, Any]] = [{"index": i} for i in range(len(candidates))]
    survivors = []
    for i, c in enumerate(candidates):
        if analytic is not None and not analytic(c):
            decisions[i].update(feasible=False, reason="analytic", latency=None)
        else:
            survivors.append(i)
    to_measure = list(survivors) if measure_all else []
    n_predicted = 0
    if survivors and not measure_all:
        preds = predictor([candidates[i] for i in survivors], settings)
        for i, p in zip(survivors, preds, strict=True):
            low, high = decision_band(p, z)
            if low > limit_ms:
                decisions[i].update(feasible=False, reason="predicted", latency=p.to_dict())
                n_predicted += 1
            elif high <= limit_ms:
                decisions[i].update(feasible=True, reason="predicted", latency=p.to_dict())
                n_predicted += 1
            else:
                to_measure.append(i)
    new = 0
    if to_measure:
        results = measurer([candidates[i] for i in to_measure], settings)
        for i, m in zip(to_measure, results, strict=True):
            decisions[i].update(feasible=m.median_ms <= limit_ms, reason="measured", latency=m.to_dict())
            new += 0 if m.cached else 1
    feasible = [d["index"] for d in decisions if d["feasible"]]
    return LatencyBudgetResult(limit_ms, feasible, new, len(to_measure), n_predicted,
                               len(candidates) - len(survivors), decisions)
