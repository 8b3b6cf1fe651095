"""What a filter and a sweep answer, as plain types (the servicer turns them into messages, the
clients read them back from messages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cost_engine.spec.network import NetworkSpec
from cost_oracle.contract.budget import Constraint
from cost_oracle.contract.errors import OracleError

__all__ = ["FilterItem", "FilterOutcome", "SweepChunk", "SweepOutcome", "SweepPoint"]


@dataclass
class FilterItem:
    index: int
    feasible: bool
    constraints: list[Constraint] = field(default_factory=list)
    violated: list[str] = field(default_factory=list)
    error: OracleError | None = None
    report: dict[str, Any] | None = None
    pareto: bool = False
    decided_by: str = "analytic"
    #: internal: the figures a Pareto front may use (not sent)
    _values: dict[str, float] = field(default_factory=dict, repr=False)


@dataclass
class FilterOutcome:
    results: list[FilterItem]
    feasible: list[int]
    pareto_front: list[int]
    measurements: int


@dataclass
class SweepPoint:
    index: int
    params: dict[str, float]
    label: str
    spec: NetworkSpec | None
    result: FilterItem
    #: the index of an earlier point that generates the same network (same cache key), if any
    duplicate_of: int | None = None


@dataclass
class SweepOutcome:
    total: int
    points: list[SweepPoint]
    feasible: list[int]
    pareto_front: list[int]
    measurements: int
    #: distinct networks among the points (grids of multipliers often round to the same one)
    distinct: int = 0


@dataclass
class SweepChunk:
    """Part of a streamed sweep: ``points`` are final except their ``pareto`` flag."""

    total: int
    points: list[SweepPoint]
