"""Python client of the NAS cost oracle: remote (sync and asyncio) and in-process, one API.

    from cost_oracle.client import RemoteOracle, InProcessOracle, Budget

    with RemoteOracle("127.0.0.1:50051") as oracle:        # or InProcessOracle(db_url=...)
        r = oracle.cost("efficientnet_b0", resolution=192)
        print(r.macs, r.cache_hit)
        out = oracle.filter(candidates, Budget(max_macs=400_000_000), pareto=["macs", "params"])

Every failure is a typed :class:`OracleError` (``InvalidArgument`` carries the field violations),
never a bare ``grpc.RpcError``. Names are imported lazily so ``import client`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cost_oracle.client.errors import (
    Code,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    OracleError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from cost_oracle.client.types import (
    Constraint,
    CostResult,
    FilterOutcome,
    FilterResult,
    ItemError,
    LatencyResult,
    ServerInfo,
    SweepOutcome,
    SweepPoint,
)

if TYPE_CHECKING:
    from cost_oracle.client.aio import AsyncRemoteOracle
    from cost_oracle.client.base import Oracle
    from cost_oracle.client.inprocess import InProcessOracle
    from cost_oracle.client.remote import RemoteOracle
    from cost_oracle.contract.budget import Budget
    from cost_oracle.contract.frames import to_pandas
    from cost_oracle.contract.spaces import EfficientNetCompoundSpace, FasterNetSpace, MultiplierSpace
    from cost_oracle.contract.types import BlockCandidate

_LAZY = {
    "to_pandas": "cost_oracle.contract.frames",
    "RemoteOracle": "cost_oracle.client.remote",
    "AsyncRemoteOracle": "cost_oracle.client.aio",
    "InProcessOracle": "cost_oracle.client.inprocess",
    "Oracle": "cost_oracle.client.base",
    "Budget": "cost_oracle.contract.budget",
    "BlockCandidate": "cost_oracle.contract.types",
    "EfficientNetCompoundSpace": "cost_oracle.contract.spaces",
    "MultiplierSpace": "cost_oracle.contract.spaces",
    "FasterNetSpace": "cost_oracle.contract.spaces",
}

__all__ = [
    "AsyncRemoteOracle",
    "BlockCandidate",
    "Budget",
    "Code",
    "Constraint",
    "CostResult",
    "DeadlineExceeded",
    "EfficientNetCompoundSpace",
    "FailedPrecondition",
    "FasterNetSpace",
    "FieldViolation",
    "FilterOutcome",
    "FilterResult",
    "InProcessOracle",
    "InvalidArgument",
    "ItemError",
    "LatencyResult",
    "MultiplierSpace",
    "Oracle",
    "OracleError",
    "RemoteOracle",
    "ResourceExhausted",
    "ServerInfo",
    "SweepOutcome",
    "SweepPoint",
    "Unauthenticated",
    "Unavailable",
    "to_pandas",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
