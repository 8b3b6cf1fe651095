"""A sweep's cost scatter and Pareto front, drawn to a PNG (matplotlib, Agg backend: no display).

Input is a sweep's JSON (``cost-oracle sweep ... --format json``) or a :class:`SweepOutcome`.
The front drawn is computed here over the two plotted axes among the feasible points, because
the axes a user plots need not be the costs the sweep's own Pareto front was taken over.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cost_oracle.contract.budget import pareto_front

#: axis name -> (label, how to read it from a point's report dict)
AXES: dict[str, str] = {
    "macs": "MACs",
    "flops": "FLOPs",
    "params": "parameters",
    "memory_access_bytes": "memory access (bytes)",
    "peak_activation_bytes": "peak activation memory (bytes)",
    "activations": "activations (conv/linear output elements)",
    "arithmetic_intensity": "arithmetic intensity (FLOP/byte)",
    "latency_ms": "latency (ms)",
}
_AXIS_ALIASES = {"memory_access": "memory_access_bytes", "peak_activation": "peak_activation_bytes",
                 "latency": "latency_ms"}


def axis_name(name: str) -> str:
    name = _AXIS_ALIASES.get(name, name)
    if name not in AXES:
        raise ValueError(f"unknown axis {name!r}; choose from {', '.join(AXES)}")
    return name


def point_value(point: Mapping[str, Any], axis: str) -> float | None:
    report = point.get("report") or {}
    if axis == "latency_ms":
        lat = report.get("latency")
        return float(lat["median_ms"]) if lat else None
    v = report.get(axis)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def si(value: float) -> str:
    """A count as people write it: 2.5G, 340M, 12k (the axis ticks and the title's budget)."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


def budget_text(budget: Mapping[str, Any] | None) -> str:
    """``max_macs 2G, max_params 10M`` of a sweep's budget (empty without limits)."""
    parts = []
    for k, v in (budget or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k.startswith("max_"):
            parts.append(f"{k} {v:g} ms" if k == "max_latency_ms" else f"{k} {si(float(v))}")
    return ", ".join(parts)


def pareto_2d(xy: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both coordinates (both minimized)."""

    return pareto_front([list(p) for p in xy])


def plot_sweep(sweep: Mapping[str, Any], out: str | Path, *, x: str = "macs", y: str = "params",
               title: str | None = None, log: bool = False, annotate: bool = True,
               label_all: bool = False) -> dict[str, Any]:
    """Draw ``sweep`` (a sweep's JSON dict) to ``out`` and write every drawn point beside it, in a
    CSV of the same name (a PNG has no hover: the CSV is how a point is found again); returns
    what was drawn (counts, front indices, the CSV's path). ``label_all``: label every point, not
    only the front's."""

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    x, y = axis_name(x), axis_name(y)
    points = list(sweep.get("points") or [])
    drawn = [(p, point_value(p, x), point_value(p, y)) for p in points]
    drawn = [(p, vx, vy) for p, vx, vy in drawn if vx is not None and vy is not None]
    if not drawn:
        raise ValueError(f"no sweep point has both {x} and {y} (was the sweep run with include_reports"
                         f"{' and latency' if 'latency_ms' in (x, y) else ''}?)")
    # a point that repeats an earlier point's network is the same network: never on the front
    feasible = [(p, vx, vy) for p, vx, vy in drawn if p.get("feasible") and p.get("duplicate_of") is None]
    infeasible = [(p, vx, vy) for p, vx, vy in drawn if not p.get("feasible")]
    repeats = [(p, vx, vy) for p, vx, vy in drawn if p.get("feasible") and p.get("duplicate_of") is not None]
    front_idx = pareto_2d([(vx, vy) for _, vx, vy in feasible]) if feasible else []
    front = sorted((feasible[i] for i in front_idx), key=lambda t: (t[1], t[2]))

    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=110)
    if infeasible:
        ax.scatter([t[1] for t in infeasible], [t[2] for t in infeasible], s=18, c="#bbbbbb", marker="x",
                   label=f"over budget ({len(infeasible)})")
    if feasible:
        ax.scatter([t[1] for t in feasible], [t[2] for t in feasible], s=20, c="#4c72b0", alpha=0.8,
                   label=f"within budget ({len(feasible)}{' distinct networks' if repeats else ''})")
    if front:
        ax.plot([t[1] for t in front], [t[2] for t in front], "-o", c="#c44e52", ms=5, lw=1.5,
                drawstyle="steps-post", label=f"Pareto front ({len(front)})")
    labelled = drawn if label_all else (front if annotate and len(front) <= 12 else [])
    for p, vx, vy in labelled:
        ax.annotate(f"#{p.get('index', '')}" if label_all else str(p.get("label", p.get("index", ""))), (vx, vy),
                    fontsize=6, xytext=(4, 4), textcoords="offset points")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    for axis, name in ((ax.xaxis, x), (ax.yaxis, y)):
        if name not in ("latency_ms", "arithmetic_intensity"):
            axis.set_major_formatter(FuncFormatter(lambda v, _pos: si(v)))
    ax.set_xlabel(AXES[x])
    ax.set_ylabel(AXES[y])
    space = sweep.get("space") or {}
    limits = budget_text(sweep.get("budget"))
    title = title or (f"sweep {space.get('kind', '')}: {len(drawn)} points" + (f"; budget {limits}" if limits else ""))
    ax.set_title(title.strip(), fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    on_front = {id(t[0]) for t in front}
    table = out.with_suffix(".csv")
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", x, y, "feasible", "pareto_front", "duplicate_of"])
        for p, vx, vy in drawn:
            w.writerow([p.get("index"), p.get("label", ""), vx, vy, bool(p.get("feasible")), id(p) in on_front,
                        "" if p.get("duplicate_of") is None else p.get("duplicate_of")])
    return {"points": len(drawn), "feasible": len(feasible) + len(repeats), "front": [t[0].get("index") for t in front],
            "x": x, "y": y, "out": str(out), "csv": str(table), "title": title.strip()}
