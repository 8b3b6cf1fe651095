"""Latency budgets: which candidates meet a latency limit, timing as few of them as possible.

Order of decisions, cheapest first:

1. ``analytic(candidate)`` — the caller's static limits (FLOPs, params, memory): a candidate that
   fails them is out, and is never predicted or timed.
2. A prediction with its interval: when its low end is above the limit the candidate is out,
   when its high end is at most the limit it is in — the prediction decides. The interval is the
   one the prediction states (the kernel model's 90% interval), else ``median +- z*u`` with
   ``z`` = :data:`DEFAULT_Z` (``z`` given: that many uncertainties, for every prediction).
3. The close calls — predictions whose interval straddles the limit. When there are at
   least twice ``probe`` of them, the ``probe`` closest to the limit are measured and decide the
   others they can (``probe.py``: each prediction corrected by the errors of the probes nearest
   to it in make-up, with an interval from those probes' own errors; verdict ``"calibrated"``);
   the rest are measured in rounds, closest first, that join the probe. Fewer close calls (or
   ``probe=0``): all measured, in one batch of sessions, and the measured median decides (all
   survivors when ``measure_all``).

With an honest 90% interval a prediction decides wrongly for at most 5% of the candidates at
its edge (the error must also point across the limit), far fewer of those further away; the
tests compare against measuring all, the benchmark audits verdicts by re-measuring them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cost_engine.latency import probe as probing
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
    predicted: int  # candidates decided without a measurement (their prediction, or calibrated by the probe)
    analytic_rejected: int
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"limit_ms": self.limit_ms, "feasible": list(self.feasible), "measurements": self.measurements,
                "measured": self.measured, "predicted": self.predicted, "analytic_rejected": self.analytic_rejected,
                "decisions": self.decisions}


#: the band of a prediction that states no interval of its own, in uncertainties
DEFAULT_Z = 2.0
#: sessions per close call measured
FILTER_SESSIONS = 3


def decision_band(p: LatencyResult, z: float | None = None) -> tuple[float, float]:
    """The prediction's interval at ``z``: multiplicative when the model states a log-scale
    spread (the kernel model: its errors are relative), else ``median +- z * uncertainty``.
    ``z`` None: the interval the prediction states (the kernel model's 90% interval, a
    conformal claim the benchmark checks on held-out networks), else :data:`DEFAULT_Z`."""
    sigma = p.details.get("log_sigma") if p.details else None
    if z is None:
        stated = p.details.get("interval_90") if p.details else None
        if stated is not None and len(stated) == 2 and 0 < stated[0] <= p.median_ms <= stated[1]:
            return float(stated[0]), float(stated[1])
        z = DEFAULT_Z
    if sigma is not None:
        return p.median_ms * math.exp(-z * sigma), p.median_ms * math.exp(z * sigma)
    band = z * p.uncertainty_ms
    return p.median_ms - band, p.median_ms + band


def filter_by_latency(candidates: Sequence[Spec | str], limit_ms: float, settings: LatencySettings | None = None, *,
                      cache: Any = None, measure_all: bool = False, method: str = "default",
                      analytic: Callable[[Any], bool] | None = None, measurer: Measurer | None = None,
                      predictor: Predictor | None = None, z: float | None = None,
                      sessions: int = FILTER_SESSIONS, time_cap_s: float | None = None,
                      probe: int = probing.PROBE) -> LatencyBudgetResult:
    """Indices (input order) of the candidates whose latency is at most ``limit_ms``.

    ``measurer(candidates, settings) -> results`` and ``predictor(candidates, settings) ->
    results`` replace the in-process defaults (e.g. to go through the server's measurement
    queue); both take and return lists, so a batch is timed in shared sessions. ``probe``: the
    close calls measured first to decide the others (0: measure every close call).
    """
    if not isinstance(probe, int) or isinstance(probe, bool) or probe < 0:
        raise SpecError([FieldError("probe", f"must be a nonnegative integer, got {probe!r}")])
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
    new = 0

    def measure(indices: list[int]) -> dict[int, LatencyResult]:
        nonlocal new
        if not indices:
            return {}
        results = measurer([candidates[i] for i in indices], settings)
        for i, m in zip(indices, results, strict=True):
            decisions[i].update(feasible=m.median_ms <= limit_ms, reason="measured", latency=m.to_dict())
            new += 0 if m.cached else 1
        return dict(zip(indices, results, strict=True))

    n_measured = n_predicted = 0
    if measure_all:
        n_measured = len(measure(list(survivors)))
    elif survivors:
        preds = predictor([candidates[i] for i in survivors], settings)
        close: list[tuple[int, LatencyResult]] = []
        bands: list[tuple[float, float, float]] = []  # the close calls' (median, low, high), as judged
        for i, p in zip(survivors, preds, strict=True):
            low, high = decision_band(p, z)
            if low > limit_ms:
                decisions[i].update(feasible=False, reason="predicted", latency=p.to_dict())
                n_predicted += 1
            elif high <= limit_ms:
                decisions[i].update(feasible=True, reason="predicted", latency=p.to_dict())
                n_predicted += 1
            else:
                close.append((i, p))
                bands.append((p.median_ms, low, high))
        if probe and len(close) >= 2 * probe:
            calibrated, n_measured = _probe_close_calls(close, bands, limit_ms, probe, measure, decisions)
            n_predicted += calibrated
        else:
            n_measured = len(measure([i for i, _ in close]))
    feasible = [d["index"] for d in decisions if d["feasible"]]
    return LatencyBudgetResult(limit_ms, feasible, new, n_measured, n_predicted,
                               len(candidates) - len(survivors), decisions)


def _probe_close_calls(close: list[tuple[int, LatencyResult]], bands: list[tuple[float, float, float]],
                       limit_ms: float, probe: int, measure: Callable[[list[int]], dict[int, LatencyResult]],
                       decisions: list[dict[str, Any]]) -> tuple[int, int]:
    """Measure a probe of the close calls (the closest to the limit), decide the others it can,
    measure the rest in rounds, closest first (each joins the probe); returns (calibrated
    verdicts, close calls measured)."""
    preds = dict(close)
    types = probing.make_up_types(list(preds.values()))
    order = [close[j][0] for j in probing.probe_order(bands, limit_ms)]
    measured = measure(order[:probe])
    pending = order[probe:]
    while True:
        probes = list(measured)
        correction = probing.LocalCorrection.fit([preds[i] for i in probes], [measured[i].median_ms for i in probes],
                                                 types)
        verdicts = {i: probing.decide(correction, preds[i], limit_ms) for i in pending}
        undecided = [i for i in pending if verdicts[i] is None]  # in the random order
        if len(undecided) <= probing.ROUND:
            measured |= measure(undecided)
            break
        measured |= measure(undecided[:probing.ROUND])
        pending = [i for i in pending if i not in measured]
    calibrated = 0
    for i in pending:
        v = verdicts[i]
        if v is None:
            continue
        p = preds[i]
        med, q = v["corrected_ms"], v["log_half_width"]
        factor = med / p.median_ms
        # the figure reported is the corrected one (the verdict's), its interval the probe's
        latency = p.to_dict() | {"median_ms": med, "p10_ms": p.p10_ms * factor, "p90_ms": p.p90_ms * factor,
                                 "ci_low_ms": med * math.exp(-q), "ci_high_ms": med * math.exp(q),
                                 "uncertainty_ms": med * (math.exp(q) - 1.0)}
        latency["details"] = dict(p.details or {}) | {
            "calibrated": {"predicted_ms": p.median_ms, "log_half_width": q, "probes": len(probes),
                           "neighbours": correction.k, "judges": correction.k_interval}}
        decisions[i].update(feasible=v["feasible"], reason="calibrated", latency=latency)
        calibrated += 1
    return calibrated, len(measured)
