"""The result types a client hands its caller: the contract's (``cost_oracle.contract.results``),
named here for callers."""

from __future__ import annotations

from cost_oracle.contract.budget import Constraint
from cost_oracle.contract.results import (
    BUDGET_FIELDS,
    PARETO_METRICS,
    Candidate,
    CostResult,
    FilterOutcome,
    FilterResult,
    ItemError,
    LatencyResult,
    ServerInfo,
    SweepOutcome,
    SweepPoint,
)

__all__ = ["BUDGET_FIELDS", "PARETO_METRICS", "Candidate", "Constraint", "CostResult", "FilterOutcome",
           "FilterResult", "ItemError", "LatencyResult", "ServerInfo", "SweepOutcome", "SweepPoint"]
