"""Roofline latency estimate: per op, overhead + max(compute time, memory time), summed.

Per-op FLOPs and bytes come from :func:`cost_engine.formulas.op_cost` on the engine's expanded op
list — the same numbers the cost report gives, never a second formula. Compute time is FLOPs /
the calibrated peak FLOP/s of the dtype; memory time is (elements read + written) x dtype size /
the calibrated bandwidth; the ceiling that binds is the op's time. Eager PyTorch runs each op as
its own kernel, so the unfused traffic is the right one, and each op also pays a fixed dispatch
overhead (calibrated on tiny ops) that dominates mobile networks at batch 1.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cost_engine.expand.network import network_blocks
from cost_engine.expand.registry import expand_block
from cost_engine.formulas import ACTIVATION_FLOPS, VIEWS, op_cost
from cost_engine.latency.calibrate import Calibration
from cost_engine.memo import block_memo_entries
from cost_engine.ops import Shape
from cost_engine.report import DTYPE_BYTES
from cost_engine.spec.base import Spec

#: which calibrated tiny op stands for the dispatch overhead of an op kind
OVERHEAD_CLASS: dict[str, str] = {
    "conv2d": "conv2d",
    "batch_norm": "batch_norm",
    "linear": "linear",
    "matmul": "linear",
    "add": "add",
    "sub": "add",
    "mul": "add",
    "div": "add",
    "adaptive_avg_pool2d": "adaptive_avg_pool2d",
    "mean": "adaptive_avg_pool2d",
    "avg_pool2d": "adaptive_avg_pool2d",
    "max_pool2d": "adaptive_avg_pool2d",
    **{kind: "relu" for kind in ACTIVATION_FLOPS},
}


@dataclass(frozen=True)
class Ceilings:
    """The hashable part of a calibration the estimate depends on."""

    peak_flops: float
    bandwidth: float
    overheads: tuple[tuple[str, float], ...]
    default_overhead: float

    @classmethod
    def of(cls, cal: Calibration) -> Ceilings:
        return cls(cal.peak_flops, cal.bandwidth_bytes_per_s, tuple(sorted(cal.overhead_by_kind.items())),
                   cal.overhead_s_per_op)

    def overhead(self, kind: str) -> float:
        if kind in VIEWS:
            return 0.0
        cls = OVERHEAD_CLASS.get(kind)
        for name, value in self.overheads:
            if name == cls:
                return value
        return self.default_overhead


@dataclass(frozen=True)
class RooflineTerms:
    """Seconds: the estimate and what it is made of (for the residual fit and for reports)."""

    total_s: float = 0.0
    compute_bound_s: float = 0.0
    memory_bound_s: float = 0.0
    overhead_s: float = 0.0
    ops: int = 0

    def __add__(self, other: RooflineTerms) -> RooflineTerms:
        return RooflineTerms(self.total_s + other.total_s, self.compute_bound_s + other.compute_bound_s,
                             self.memory_bound_s + other.memory_bound_s, self.overhead_s + other.overhead_s,
                             self.ops + other.ops)


@functools.lru_cache(maxsize=block_memo_entries())  # bounded in bytes: cost_engine/memo.py
def block_roofline(spec: Spec, input_shape: Shape, ceilings: Ceilings, itemsize: int,
                   channels_last: bool = False) -> RooflineTerms:
    terms = RooflineTerms()
    for op in expand_block(spec, input_shape, channels_last)[0]:
        cost = op_cost(op)
        compute = cost.flops / ceilings.peak_flops
        memory = (cost.read + cost.written) * itemsize / ceilings.bandwidth
        overhead = ceilings.overhead(op.kind)
        bound = max(compute, memory)
        terms = terms + RooflineTerms(bound + overhead, bound if compute >= memory else 0.0,
                                      bound if memory > compute else 0.0, overhead, 1)
    return terms


def roofline(spec: Spec, input_shape: Shape, cal: Calibration, dtype: str) -> RooflineTerms:
    """The roofline estimate of a network (or block) on ``input_shape``, summed over its blocks."""
    ceilings = Ceilings.of(cal)
    itemsize = DTYPE_BYTES[dtype]
    total = RooflineTerms()
    for block in network_blocks(spec, input_shape):
        total = total + block_roofline(block.spec, block.input_shape, ceilings, itemsize, block.channels_last)
    return total
