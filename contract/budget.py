"""Budgets: limits on cost figures, constraint values in the Optuna convention, Pareto fronts.

A NAS controller keeps the candidates under its budget and often hands the constraint values
straight to a sampler (Optuna's ``constraints_func`` treats a value <= 0 as satisfied), so each
limit becomes ``actual - limit`` rather than a bare yes/no: the sign says feasible, the size
says by how much. Analytic limits are separated from the latency limit because they cost
microseconds and the latency limit may cost a measurement: callers check the first group for
every candidate and the second only for the survivors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

#: analytic limit name -> report key it bounds (order = Budget field order = proto order)
ANALYTIC_LIMITS: dict[str, str] = {
    "max_macs": "macs",
    "max_flops": "flops",
    "max_params": "params",
    "max_memory_access_bytes": "memory_access_bytes",
    "max_peak_activation_bytes": "peak_activation_bytes",
}
LATENCY_LIMIT = "max_latency_ms"

#: Pareto field name -> how to read it from a report dict (latency from report["latency"])
PARETO_FIELDS: tuple[str, ...] = ("macs", "flops", "params", "memory_access_bytes", "peak_activation_bytes",
                                  "latency_ms")


@dataclass(frozen=True)
class Budget:
    """Upper limits; ``None`` is "not checked". Memory figures are bytes of the context dtype.

    ``measure_all``: measure the latency of every analytic survivor instead of only those whose
    prediction is too close to ``max_latency_ms`` to decide.
    """

    max_macs: int | None = None
    max_flops: int | None = None
    max_params: int | None = None
    max_memory_access_bytes: int | None = None
    max_peak_activation_bytes: int | None = None
    max_latency_ms: float | None = None
    measure_all: bool = False

    def validate(self, path: str = "budget") -> list[tuple[str, str]]:
        errors = []
        for name in ANALYTIC_LIMITS:
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int):
                errors.append((f"{path}.{name}", f"must be an integer, got {v!r}"))
            elif v < 0:
                errors.append((f"{path}.{name}", f"must be >= 0, got {v}"))
        v = self.max_latency_ms
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                              or v <= 0):
            errors.append((f"{path}.{LATENCY_LIMIT}", f"must be a finite number > 0, got {v!r}"))
        return errors

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self) if f.name != "measure_all")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Constraint:
    """One limit checked on one candidate, Optuna-style: ``value = actual - limit <= 0`` is
    satisfied; ``ratio`` is actual / limit (0 when both are 0; inf when only the limit is 0)."""

    name: str
    value: float
    actual: float
    limit: float
    ratio: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "actual": self.actual, "limit": self.limit,
                "ratio": self.ratio}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Constraint:
        return cls(name=str(data["name"]), value=float(data["value"]), actual=float(data["actual"]),
                   limit=float(data["limit"]), ratio=float(data.get("ratio", 0.0)))


def constraint(name: str, actual: float, limit: float) -> Constraint:
    ratio = actual / limit if limit else 0.0 if not actual else math.inf
    return Constraint(name, float(actual - limit), float(actual), float(limit), float(ratio))


def analytic_constraints(budget: Budget, report: Mapping[str, Any]) -> list[Constraint]:
    """The constraints of every set analytic limit, from a report dict (cheap: no latency)."""
    out = []
    for name, key in ANALYTIC_LIMITS.items():
        limit = getattr(budget, name)
        if limit is not None:
            out.append(constraint(name, report[key], limit))
    return out


def latency_constraint(budget: Budget, median_ms: float) -> Constraint:
    assert budget.max_latency_ms is not None
    return constraint(LATENCY_LIMIT, median_ms, budget.max_latency_ms)


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices (ascending) of the points no other point dominates; every coordinate is minimized.

    A point dominates another when it is <= in every coordinate and < in at least one; equal
    points do not dominate each other, so duplicates on the front are all kept. The front is
    computed over the *distinct* points (a Filter of 4,000 identical candidates is one point,
    not 4,000 x 4,000 comparisons): for two objectives a sweep in lexicographic order keeps a
    point when it beats the best second coordinate seen so far, O(n log n); for more, each point
    is checked against the front found so far, O(n * front), since in lexicographic order a point
    can only be dominated by one visited before it.
    """
    groups: dict[tuple[float, ...], list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault(tuple(p), []).append(i)
    distinct = sorted(groups)
    if distinct and len(distinct[0]) == 2:
        kept = []
        best = float("inf")
        for p in distinct:
            if p[1] < best:
                kept.append(p)
                best = p[1]
    else:
        kept = []
        for p in distinct:
            if not any(all(a <= b for a, b in zip(q, p, strict=True)) for q in kept):  # distinct: <= is <
                kept.append(p)
    return sorted(i for p in kept for i in groups[p])
