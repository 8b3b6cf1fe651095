"""Results as pandas DataFrames, one row per candidate with the figures as columns: where
researchers analyse a batch, a filter or a sweep (pandas is optional: ``pip install pandas``).

    client.to_pandas(oracle.cost_many(cands))     # batch: CostResult / ItemError per row
    oracle.filter(cands, budget).to_pandas()      # + feasible, pareto, decided_by, one column per limit
    oracle.sweep(space, budget).to_pandas()       # + the point's coordinates and duplicate_of
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["cost_row", "frame", "to_pandas"]

#: the scalar figures of a report, as columns, in this order
FIGURES = ("macs", "flops", "params", "buffers", "memory_access_bytes", "memory_access_bytes_fused",
           "peak_activation_bytes", "activations", "arithmetic_intensity", "op_count")


def cost_row(r: Any) -> dict[str, Any]:
    """One batch result (``CostResult`` or ``ItemError``) as a flat row."""
    if getattr(r, "code", None) is not None and not hasattr(r, "macs"):  # an ItemError
        return {"index": r.index, "error": "; ".join(r.lines()) if hasattr(r, "lines") else str(r)}
    row: dict[str, Any] = {"candidate": r.candidate, "batch_size": r.batch_size, "dtype": r.dtype,
                           "input_shape": "x".join(str(d) for d in r.input_shape)}
    row.update({f: getattr(r, f) for f in FIGURES})
    lat = r.latency
    row["latency_ms"] = lat.median_ms if lat is not None else None
    row["latency_source"] = lat.source if lat is not None else None
    row["latency_noisy"] = bool(lat.noisy) if lat is not None else None
    row["cache_hit"] = r.cache_hit
    row["cache_key"] = r.cache_key
    return row


def verdict_row(r: Any) -> dict[str, Any]:
    """One filter verdict as a flat row: the report's figures (when included) and one
    ``constraint[NAME]`` column (``actual - limit``) per budget limit."""
    row: dict[str, Any] = {"index": r.index, "feasible": r.feasible, "pareto": r.pareto, "decided_by": r.decided_by}
    if r.report is not None:
        row.update({k: v for k, v in cost_row(r.report).items() if k not in ("cache_key",)})
    for c in r.constraints:
        row[f"constraint[{c.name}]"] = c.value
    row["violated"] = ",".join(r.violated)
    row["error"] = "; ".join(r.error.lines()) if r.error is not None else ""
    return row


def frame(rows: Iterable[dict[str, Any]]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_pandas needs pandas, an optional dependency: pip install pandas") from None
    return pd.DataFrame(list(rows))


def to_pandas(results: Any) -> Any:
    """A DataFrame of a batch (a list of results), a ``FilterOutcome`` or a ``SweepOutcome``."""
    if hasattr(results, "to_pandas"):
        return results.to_pandas()
    return frame(cost_row(r) for r in results)
