"""Python client of the NAS cost oracle: remote (sync and asyncio) and in-process, one API.

    from client import RemoteOracle, InProcessOracle, Budget

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

from client.errors import (
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
from client.types import (
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
    from client.aio import AsyncRemoteOracle
    from client.base import Oracle
    from client.frames import to_pandas
    from client.inprocess import InProcessOracle
    from client.remote import RemoteOracle
    from contract.budget import Budget
    from contract.spaces import EfficientNetCompoundSpace, FasterNetSpace, MultiplierSpace
    from contract.types import BlockCandidate

_LAZY = {
    "to_pandas": "client.frames",
    "RemoteOracle": "client.remote",
    "AsyncRemoteOracle": "client.aio",
    "InProcessOracle": "client.inprocess",
    "Oracle": "client.base",
    "Budget": "contract.budget",
    "BlockCandidate": "contract.types",
    "EfficientNetCompoundSpace": "contract.spaces",
    "MultiplierSpace": "contract.spaces",
    "FasterNetSpace": "contract.spaces",
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
