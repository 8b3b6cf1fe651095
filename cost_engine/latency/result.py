"""``LatencyResult``: one latency figure, always saying whether it was measured or predicted and
how uncertain it is, with everything needed to judge it (protocol, fingerprint, canary)."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from typing import Any

from cost_engine.latency.keys import PROTOCOL_VERSION
from cost_engine.latency.protocol import summarize_samples

SOURCES = ("measured", "predicted")
METHODS = ("measured", "roofline", "block_table", "flops")


@dataclass
class LatencyResult:
    """Milliseconds per forward of one batch.

    Measured: ``median_ms`` is the median of the per-session medians (one fresh process each),
    ``p10_ms``/``p90_ms``/``cv``/``runs`` describe all samples pooled across sessions, and
    ``uncertainty_ms`` is the larger of half the range of session medians and the pooled
    median's 95% CI half-width — the across-process spread, which within-run statistics
    understate many times over. Predicted: ``median_ms`` is the estimate, ``uncertainty_ms`` the
    model's typical error (from its residual fit, else a stated prior), ``p10_ms``/``p90_ms``
    the band ``median -/+ uncertainty``, ``cv`` = uncertainty / median, ``runs`` 0.
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    cv: float
    runs: int
    source: str
    method: str
    uncertainty_ms: float
    sessions: int = 0
    spread_across_sessions: float = 0.0
    session_medians_ms: list[float] = field(default_factory=list)
    protocol_version: str = PROTOCOL_VERSION
    settings: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    canary: dict[str, Any] | None = None
    page_faults_per_call: float | None = None
    threads: int | None = None
    first_call_ms: float | None = None
    cached: bool = False
    key: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], cached: bool | None = None) -> LatencyResult:
        names = {f.name for f in dataclasses.fields(cls)}
        result = cls(**{k: v for k, v in data.items() if k in names})
        if cached is not None:
            result.cached = cached
        return result

    @property
    def relative_uncertainty(self) -> float:
        return self.uncertainty_ms / self.median_ms if self.median_ms > 0 else float("inf")


def predicted(median_ms: float, uncertainty_ms: float, method: str, **extra: Any) -> LatencyResult:
    return LatencyResult(median_ms=median_ms, p10_ms=max(0.0, median_ms - uncertainty_ms),
                         p90_ms=median_ms + uncertainty_ms,
                         cv=uncertainty_ms / median_ms if median_ms > 0 else 0.0, runs=0, source="predicted",
                         method=method, uncertainty_ms=uncertainty_ms, **extra)


def combine_sessions(timings: list[dict[str, Any]], **extra: Any) -> LatencyResult:
    """One measured result from the same item timed in several fresh processes."""
    medians = [statistics.median(t["samples_ms"]) for t in timings]
    pooled = [s for t in timings for s in t["samples_ms"]]
    stats = summarize_samples(pooled)
    median = statistics.median(medians)
    spread = (max(medians) - min(medians)) / median if median > 0 else 0.0
    uncertainty = max((max(medians) - min(medians)) / 2, stats["ci_half_ms"])
    cpu_medians = [statistics.median(t["cpu_samples_ms"]) for t in timings if t.get("cpu_samples_ms")]
    cpu_median = statistics.median(cpu_medians) if len(cpu_medians) == len(timings) else None
    per_session = [summarize_samples(t["samples_ms"]) for t in timings]
    details = {
        "session_ci_half_ms": [p["ci_half_ms"] for p in per_session],
        "session_cv": [p["cv"] for p in per_session],
        "cpu_time_median_ms": cpu_median,
        "cpu_time_session_medians_ms": cpu_medians,
        # wall / (CPU time per thread): ~1 when the process had its cores to itself
        "contention": median * (extra.get("threads") or 1) / cpu_median if cpu_median else None,
        "stopped": [t["stopped"] for t in timings],
        "samples_per_session": [len(t["samples_ms"]) for t in timings],
        "calls_per_sample": [t["number"] for t in timings],
        "page_faults_per_call_by_session": [t["page_faults_per_call"] for t in timings],
        "warmup_calls": [t["warmup_calls"] for t in timings],
        "warmup_steady": [t.get("warmup_steady") for t in timings],
        "pooled_median_ms": stats["median_ms"],
    }
    details.update(extra.pop("details", {}))
    return LatencyResult(
        median_ms=median, p10_ms=stats["p10_ms"], p90_ms=stats["p90_ms"], cv=stats["cv"], runs=stats["runs"],
        source="measured", method="measured", uncertainty_ms=uncertainty, sessions=len(timings),
        spread_across_sessions=spread, session_medians_ms=medians,
        page_faults_per_call=max(t["page_faults_per_call"] for t in timings),
        first_call_ms=statistics.median(t["first_call_ms"] for t in timings), details=details, **extra)
