"""Deciding a latency filter's close calls from a few of them measured (the filter's second stage).

The model's interval is global: it is as wide as the model's worst-predicted kind of network,
while a filter's close calls are the candidates near one limit, measured today on this device.
Their errors are not independent: networks of the same make-up share most of theirs (one space
predicted 2% high, another 5% low, the device a little slower than when the model was fitted).
So the filter measures a probe of its close calls and, for each of the others, corrects its
prediction by the mean error of the :data:`BIAS_NEIGHBOURS` probes nearest to it in make-up
(``neighbours.py``: the share of its predicted time per unit type, and its launches), with an
interval from the errors the :data:`INTERVAL_NEIGHBOURS` probes nearest to it made when each was
predicted the same way from the other probes: for exchangeable errors a new one exceeds the
``ceil((n + 1) * 0.9)``-th smallest of ``n`` with probability at most 1/10 (split conformal),
and a verdict flips only when the error also points across the limit. A few nearest probes
correct best (networks of one make-up share their error); more of them judge the interval
better (the 18th of 19 errors is a steadier 90% quantile than the largest of 9).

Which close calls are measured: the closest to the limit first (distance in units of the
prediction's own interval), since those are measured whatever the probe says — a random probe
spends measurements on candidates the others' errors would have decided. What the probe cannot
decide is measured in rounds of :data:`ROUND`, closest first, each round joining the probe,
until what is left fits in one round. The benchmark (``benchmarks/kernel_prediction.py``) audits
these verdicts by re-measuring them.

Only when the predictions state their make-up (``details["type_shares"]``, the kernel model's)
is the correction local; otherwise it is one shared correction over all probes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from cost_engine.latency.neighbours import make_up, nearest
from cost_engine.latency.result import LatencyResult

#: close calls measured first (the closest to the limit); below twice this many, all are measured
PROBE = 30
#: close calls measured per later round (the closest undecided ones)
ROUND = 10
#: probes whose mean error corrects a prediction
BIAS_NEIGHBOURS = 5
#: probes whose own errors give a prediction's interval (their conformal 90% quantile)
INTERVAL_NEIGHBOURS = 19
LEVEL = 0.9


def descriptor(p: LatencyResult, types: list[str]) -> list[float]:
    details = p.details or {}
    return make_up(details.get("type_shares") or {}, float(details.get("launches") or 0.0), types)


def conformal_quantile(errors: list[float], level: float = LEVEL) -> float:
    """The ``ceil((n + 1) * level)``-th smallest of ``n`` errors (the largest when ``n`` is too small
    for that rank: with fewer than 9 errors a 90% claim cannot be made, and the largest is the
    most cautious figure there is)."""
    if not errors:
        return math.inf
    ranked = sorted(errors)
    return ranked[min(len(ranked), math.ceil((len(ranked) + 1) * level)) - 1]


@dataclass
class LocalCorrection:
    """Measured probes: their descriptors, their log errors ``log(measured / predicted)``, and
    each one's error when corrected from its nearest other probes."""

    x: list[list[float]]
    y: list[float]
    loo: list[float]
    types: list[str]
    k: int
    k_interval: int

    @classmethod
    def fit(cls, preds: list[LatencyResult], measured: list[float], types: list[str],
            k: int = BIAS_NEIGHBOURS, k_interval: int = INTERVAL_NEIGHBOURS) -> LocalCorrection:
        pairs = [(p, m) for p, m in zip(preds, measured, strict=True) if p.median_ms > 0 and m > 0]
        x = [descriptor(p, types) for p, _ in pairs]
        y = [math.log(m / p.median_ms) for p, m in pairs]
        if types:
            k, k_interval = max(1, min(k, len(y) - 1)), max(1, min(k_interval, len(y)))
        else:  # no make-up stated: one correction shared by all, judged by all probes' errors
            k, k_interval = max(1, len(y) - 1), len(y)
        loo = []
        for i in range(len(y)):
            nn = nearest(x, x[i], k, skip=i)
            loo.append(abs(y[i] - sum(y[j] for j in nn) / len(nn)) if nn else math.inf)
        return cls(x, y, loo, types, k, k_interval)

    def apply(self, p: LatencyResult) -> tuple[float, float]:
        """(corrected median ms, half-width of its interval in log)."""
        point = descriptor(p, self.types)
        nn = nearest(self.x, point, self.k)
        if not nn or p.median_ms <= 0:
            return p.median_ms, math.inf
        bias = sum(self.y[j] for j in nn) / len(nn)
        judges = nearest(self.x, point, self.k_interval)
        return p.median_ms * math.exp(bias), conformal_quantile([self.loo[j] for j in judges])


def make_up_types(preds: list[LatencyResult]) -> list[str]:
    """The unit types any of the predictions states a time share for (sorted)."""
    return sorted({t for p in preds for t in ((p.details or {}).get("type_shares") or {})})


def probe_order(bands: list[tuple[float, float, float]], limit_ms: float, seed: int = 0) -> list[int]:
    """Indices of the close calls, closest to the limit first. ``bands``: each one's (median, low,
    high) as the first stage judged it; distance ``|log(median / limit)|`` in units of the log
    half-width of its interval (ties in a seeded random order)."""
    def closeness(band: tuple[float, float, float]) -> float:
        median, low, high = band
        width = math.log(high / low) / 2 if 0 < low < high else 0.0
        return abs(math.log(median / limit_ms)) / width if median > 0 and width > 0 else 0.0

    order = list(range(len(bands)))
    random.Random(seed).shuffle(order)
    return sorted(order, key=lambda j: closeness(bands[j]))


def decide(correction: LocalCorrection, p: LatencyResult, limit_ms: float) -> dict[str, Any] | None:
    """The verdict the probe gives ``p`` (None: still too close to call)."""
    median, q = correction.apply(p)
    if abs(math.log(median / limit_ms)) <= q:
        return None
    return {"feasible": median <= limit_ms, "corrected_ms": median, "log_half_width": q}
