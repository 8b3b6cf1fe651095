"""Deciding a latency filter's close calls from a few of them measured (the filter's second stage).

The model's interval is global: it is as wide as the model's worst-predicted kind of network,
while a filter's close calls are the candidates near one limit, measured today on this device.
Their errors are not independent: networks of the same make-up share most of theirs (one space
predicted 2% high, another 5% low, the device a little slower than when the model was fitted).
So the filter measures a random probe of its close calls and, for each of the others, corrects
its prediction by the mean error of the :data:`NEIGHBOURS` probes nearest to it in make-up
(``neighbours.py``: the share of its predicted time per unit type, and its launches), with an
interval that is the largest error the same neighbours made when each was predicted from its
own nearest probes: for exchangeable errors a new one exceeds the largest of ``k`` with
probability ``1/(k+1)`` (a 90% interval for ``k`` = 9), and a verdict flips only when the error
also points across the limit. What the probe cannot decide is measured in rounds of
:data:`ROUND`, each round joining the probe, until what is left fits in one round. The
benchmark (``benchmarks/kernel_prediction.py``) audits these verdicts.

Only when the predictions state their make-up (``details["type_shares"]``, the kernel model's)
is the correction local; otherwise it is one shared correction, with the largest probe error.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from cost_engine.latency.neighbours import NEIGHBOURS, make_up, nearest
from cost_engine.latency.result import LatencyResult

#: close calls measured first, at random; below twice this many, all close calls are measured
PROBE = 30
#: close calls measured per later round (the undecided ones, at random)
ROUND = 10


def descriptor(p: LatencyResult, types: list[str]) -> list[float]:
    details = p.details or {}
    return make_up(details.get("type_shares") or {}, float(details.get("launches") or 0.0), types)


@dataclass
class LocalCorrection:
    """Measured probes: their descriptors, their log errors ``log(measured / predicted)``, and
    each one's error when predicted from its nearest other probes."""

    x: list[list[float]]
    y: list[float]
    loo: list[float]
    types: list[str]
    k: int

    @classmethod
    def fit(cls, preds: list[LatencyResult], measured: list[float], types: list[str],
            k: int = NEIGHBOURS) -> LocalCorrection:
        pairs = [(p, m) for p, m in zip(preds, measured, strict=True) if p.median_ms > 0 and m > 0]
        x = [descriptor(p, types) for p, _ in pairs]
        y = [math.log(m / p.median_ms) for p, m in pairs]
        k = max(1, min(k, len(y) - 1)) if types else len(y) - 1
        loo = []
        for i in range(len(y)):
            nn = nearest(x, x[i], k, skip=i)
            loo.append(abs(y[i] - sum(y[j] for j in nn) / len(nn)) if nn else math.inf)
        return cls(x, y, loo, types, k)

    def apply(self, p: LatencyResult) -> tuple[float, float]:
        """(corrected median ms, half-width of its interval in log)."""
        nn = nearest(self.x, descriptor(p, self.types), self.k)
        if not nn or p.median_ms <= 0:
            return p.median_ms, math.inf
        bias = sum(self.y[j] for j in nn) / len(nn)
        return p.median_ms * math.exp(bias), max(self.loo[j] for j in nn)


def make_up_types(preds: list[LatencyResult]) -> list[str]:
    """The unit types any of the predictions states a time share for (sorted)."""
    return sorted({t for p in preds for t in ((p.details or {}).get("type_shares") or {})})


def probe_order(n: int, seed: int = 0) -> list[int]:
    """A random order of ``n`` close calls: the probe is its head, each round the next undecided."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def decide(correction: LocalCorrection, p: LatencyResult, limit_ms: float) -> dict[str, Any] | None:
    """The verdict the probe gives ``p`` (None: still too close to call)."""
    median, q = correction.apply(p)
    if abs(math.log(median / limit_ms)) <= q:
        return None
    return {"feasible": median <= limit_ms, "corrected_ms": median, "log_half_width": q}
