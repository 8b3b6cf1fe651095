"""Filter and sweep verdicts as table / CSV rows (one row per candidate or sweep point)."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

from cost_oracle.client.cli._common import human
from cost_oracle.client.types import FilterResult

FIGURES = ("macs", "flops", "params", "memory_access_bytes", "peak_activation_bytes")


def verdict_header(param_names: Sequence[str] = (), *, label: bool = True) -> list[str]:
    head = ["index"] + (["label"] if label else []) + list(param_names)
    return [*head, "feasible", "pareto", "decided_by", *FIGURES, "latency_ms", "latency_source", "violated", "error"]


def verdict_row(r: FilterResult, label: str | None = None, params: dict[str, float] | None = None,
                param_names: Sequence[str] = (), *, pareto: bool = True) -> list[Any]:
    """``pareto``: whether a front was computed (without ``--pareto`` the column says ``-``,
    not a misleading "no")."""
    row: list[Any] = [r.index]
    if label is not None:
        row.append(label)
    row.extend(_param(params or {}, n) for n in param_names)
    rep = r.report
    row.extend([r.feasible, r.pareto if pareto else "-", r.decided_by])
    row.extend(getattr(rep, f) if rep is not None else None for f in FIGURES)
    lat = rep.latency if rep is not None else None
    row.append(lat.median_ms if lat is not None else None)
    row.append((f"{lat.source} NOISY" if lat.noisy else lat.source) if lat is not None else None)
    row.append(" ".join(_over(c) for c in r.constraints if c.value > 0))
    row.append("; ".join(r.error.lines()) if r.error is not None else "")
    return row


def front_summary(front: Sequence[int], pareto: Sequence[str]) -> str:
    """The summary line's Pareto part: the front's indices, or that none was asked for."""
    if not pareto:
        return "Pareto front not computed (ask with --pareto)"
    return f"Pareto front over {','.join(pareto)}: {list(front)}"


def _param(params: dict[str, float], name: str) -> Any:
    v = params.get(name)
    if isinstance(v, float) and v.is_integer() and name not in ("alpha", "beta", "gamma", "mlp_ratio", "width",
                                                                 "depth"):
        return int(v)
    return v


_PARAM_ORDER = ("phi", "alpha", "beta", "gamma", "width", "depth", "resolution", "n_div", "mlp_ratio", "embed_dim")


def param_names(points: Sequence[Any]) -> list[str]:
    """The sweep coordinates in a fixed order (a map on the wire has none): known axes, then depths[i]."""

    names = {k for p in points for k in p.params}

    def rank(n: str) -> tuple[int, int, str]:
        if n in _PARAM_ORDER:
            return (0, _PARAM_ORDER.index(n), n)
        m = re.fullmatch(r"(\w+)\[(\d+)\]", n)
        return (1, int(m.group(2)), m.group(1)) if m else (2, 0, n)

    return sorted(names, key=rank)


def _over(c: Any) -> str:
    """``max_macs +15.04M (+4.8%)``: which limit, by how much."""

    amount = human(int(c.value)) if c.name != "max_latency_ms" else f"{c.value:.3g}ms"
    pct = f" (+{100 * (c.ratio - 1):.1f}%)" if c.ratio and c.limit else ""
    return f"{c.name} +{amount}{pct}"


def report_item_errors(results: Sequence[FilterResult]) -> int:
    """Name each failed candidate on stderr; the number of them."""

    n = 0
    for r in results:
        if r.error is not None:
            n += 1
            for line in r.error.lines():
                sys.stderr.write(f"error: {line}\n")
    return n
