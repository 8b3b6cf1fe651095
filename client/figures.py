"""The figures of a cost report that a search library may optimize or bound, by one name each.

The Optuna and NNI adapters both turn a report into numbers a search reads; the names and the
rule for latency (the median of a measured or predicted latency) live here once.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FIGURES", "report_figures"]

#: report figures an objective or a profiler may name
FIGURES = ("macs", "flops", "params", "memory_access_bytes", "peak_activation_bytes", "activations", "latency_ms")


def report_figures(report: Any) -> dict[str, float | None]:
    """Every figure of :data:`FIGURES` of ``report`` (a client ``CostResult``); ``latency_ms`` is
    None when the report has no latency (it was asked with ``latency='off'``)."""
    out: dict[str, float | None] = {k: getattr(report, k) for k in FIGURES if k != "latency_ms"}
    out["latency_ms"] = report.latency.median_ms if report.latency is not None else None
    return out
