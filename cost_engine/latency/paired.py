"""From paired timings (``protocol.time_paired``, one per session) to one :class:`LatencyResult`.

Each session gives pair ratios (a candidate block over the mean of the reference blocks
around it). The sessions are pooled with *equal weight per session*: each contributes a
quantile sketch of :data:`SKETCH_POINTS` points, and the median, p10, p90 and CV are read off
the union of the sketches. One distribution for all four figures is what keeps the median
inside [p10, p90] whatever the mix of sessions; equal weights keep one long session (a fast
item under a long cap gives thousands of samples) from standing for all of them. The same is
done for the candidate's raw wall-clock samples, reported beside the paired figures as ``raw_*``.

The 95% CI of the ratio is the larger of two half-widths: half the range of the session
ratios (processes differ more than samples within one do) and the distribution-free CI of the
pooled median. A noisy result (CI half-width above ``result.NOISY_REL_CI``) keeps its session
records, so a re-measurement pools the old sessions with the new ones and its CI narrows.
"""

from __future__ import annotations

import statistics
from typing import Any

from cost_engine.latency import result as result_module
from cost_engine.latency.protocol import median_ci, percentile
from cost_engine.latency.result import LatencyResult

SKETCH_POINTS = 21


def sketch(values: list[float]) -> list[float]:
    """Evenly spaced quantiles (0, 5%, ..., 100%) of ``values``."""
    ordered = sorted(values)
    return [percentile(ordered, i / (SKETCH_POINTS - 1)) for i in range(SKETCH_POINTS)]


def session_record(timing: dict[str, Any], pid: int | None = None) -> dict[str, Any]:
    """What a result keeps of one session's paired timing: enough to pool it again later."""
    samples = timing["samples_ms"]
    cpu = timing.get("cpu_samples_ms") or []
    return {
        "pair_ratios": list(timing["pair_ratios"]),
        "raw_sketch": sketch(samples),
        "raw_median_ms": statistics.median(samples),
        "raw_runs": len(samples),
        "ref_median_ms": statistics.median(timing["ref_samples_ms"]),
        "cpu_median_ms": statistics.median(cpu) if cpu else None,
        "stopped": timing["stopped"],
        "number": timing["number"],
        "page_faults_per_call": timing["page_faults_per_call"],
        "first_call_ms": timing["first_call_ms"],
        "warmup_calls": timing["warmup_calls"],
        "warmup_steady": timing.get("warmup_steady"),
        "pid": pid,
        # CUDA: clocks and throttle reasons read before and after the sampling (None on the CPU)
        "throttled": timing.get("throttled"),
        "gpu_clocks": timing.get("gpu_clocks"),
    }


def _pooled(sketches: list[list[float]]) -> dict[str, float]:
    union = sorted(x for s in sketches for x in s)
    mean = statistics.fmean(union)
    return {"median": percentile(union, 0.5), "p10": percentile(union, 0.1), "p90": percentile(union, 0.9),
            "cv": (statistics.pstdev(union) / mean) if mean > 0 and len(union) > 1 else 0.0}


def combine_paired(records: list[dict[str, Any]], anchor_ms: float, anchor_sessions: int, *,
                   noisy_rel_ci: float | None = None, **extra: Any) -> LatencyResult:
    """One measured result from session records (see :func:`session_record`); noisy above
    ``noisy_rel_ci`` (default: ``result.NOISY_REL_CI`` as it is now)."""
    if noisy_rel_ci is None:
        noisy_rel_ci = result_module.NOISY_REL_CI
    if not records:
        raise ValueError("a measurement needs at least one session")
    ratio_sketches = [sketch(r["pair_ratios"]) for r in records]
    paired = _pooled(ratio_sketches)
    session_ratios = [statistics.median(r["pair_ratios"]) for r in records]
    all_ratios = sorted(x for r in records for x in r["pair_ratios"])
    lo, hi = median_ci(all_ratios)
    ratio = paired["median"]
    u = max((max(session_ratios) - min(session_ratios)) / 2, (hi - lo) / 2)
    raw = _pooled([r["raw_sketch"] for r in records])
    raw_medians = [r["raw_median_ms"] for r in records]
    raw_mid = statistics.median(raw_medians)
    cpu = [r["cpu_median_ms"] for r in records]
    cpu_median = statistics.median(cpu) if all(c is not None for c in cpu) else None
    details = {
        "paired_sessions": records,
        "cpu_time_median_ms": cpu_median,
        # wall / CPU time: ~1 when the process had its core to itself
        "contention": raw["median"] * (extra.get("threads") or 1) / cpu_median if cpu_median else None,
        "stopped": [r["stopped"] for r in records],
        "samples_per_session": [r["raw_runs"] for r in records],
        "pairs_per_session": [len(r["pair_ratios"]) for r in records],
        "reference_session_medians_ms": [r["ref_median_ms"] for r in records],
        # a GPU whose clocks were throttled during a session (power, thermal): the figure says so
        "throttled_sessions": sum(bool(r.get("throttled")) for r in records),
    }
    details.update(extra.pop("details", {}))
    result = LatencyResult(
        median_ms=0.0, p10_ms=0.0, p90_ms=0.0, cv=paired["cv"], runs=sum(r["raw_runs"] for r in records),
        source="measured", method="paired", uncertainty_ms=0.0, sessions=len(records),
        spread_across_sessions=(max(session_ratios) - min(session_ratios)) / ratio if ratio > 0 else 0.0,
        noisy=ratio <= 0 or u / ratio > noisy_rel_ci,
        ratio=ratio, ratio_p10=paired["p10"], ratio_p90=paired["p90"], ratio_uncertainty=u,
        session_ratios=session_ratios, raw_median_ms=raw["median"], raw_p10_ms=raw["p10"], raw_p90_ms=raw["p90"],
        raw_cv=raw["cv"], raw_session_medians_ms=raw_medians,
        raw_spread_across_sessions=(max(raw_medians) - min(raw_medians)) / raw_mid if raw_mid > 0 else 0.0,
        page_faults_per_call=max(r["page_faults_per_call"] for r in records),
        first_call_ms=statistics.median(r["first_call_ms"] for r in records), details=details, **extra)
    return result.with_anchor(anchor_ms, anchor_sessions)
