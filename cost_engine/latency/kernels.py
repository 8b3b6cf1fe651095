"""Kernels: a network's op list grouped into the units a device actually runs, with the shape
features a learned latency predictor needs (issue #11, nn-Meter's "kernel" level).

Why a separate level between ops and blocks: a block table (``block_table.py``) only knows the
blocks it has timed, and a roofline (``roofline.py``) knows no kernel's real efficiency. A
search space of 10^19 networks is built from a few hundred distinct *units* — a convolution with
the pointwise ops that follow it, a squeeze-excite, a residual add — and a regressor over their
shape features generalizes to units it has never timed.

Two things are kept apart:

* **Units** (what is predicted): a library kernel (convolution, linear, matmul, pooling,
  concatenation, copy, normalization, softmax) together with the chain of pointwise ops that
  consume its output (batch norm in inference, activations, an add or multiply); and the
  squeeze-excite pattern (global pool, two 1x1 convolutions, gate, multiply) as one unit. The
  grouping depends on the op list only, so it is the same on every device.
* **Launches** (how many kernels the runtime starts for a unit): a device-kind rule set
  (:data:`RULES`). PyTorch eager fuses nothing across ops: every op but a view is its own
  kernel on the CPU (ATen/oneDNN) and on CUDA (cuDNN/ATen), a convolution's bias included in
  the convolution's kernel; tests/test_latency_kernels.py checks this against
  ``torch.profiler``'s top-level ATen calls of built blocks. Compiled (Inductor), the pointwise
  chain after a library kernel becomes one generated kernel.

Features are the engine's own numbers (:func:`cost_engine.formulas.op_cost`, never a second
formula): shapes, kernel, stride, groups, dtype size, batch, memory format, MACs, FLOPs, bytes
read and written, arithmetic intensity, and the launches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cost_engine.expand.network import network_blocks
from cost_engine.expand.registry import expand_block
from cost_engine.formulas import ACTIVATION_FLOPS, VIEWS, op_cost
from cost_engine.ops import Op, Shape, conv_type
from cost_engine.report import DTYPE_BYTES
from cost_engine.spec.base import Spec

if TYPE_CHECKING:
    from cost_engine.latency.reference import Nominal

#: ops that start a unit: each runs a library kernel of its own
LIBRARY_OPS: frozenset[str] = frozenset({
    "conv2d", "linear", "matmul", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "mean", "concat", "copy",
    "layer_norm", "softmax",
})
#: ops that join the unit whose output they consume
POINTWISE_OPS: frozenset[str] = frozenset({"batch_norm", "add", "sub", "mul", "div", *ACTIVATION_FLOPS})
#: an activation's code as a feature (0: none); order is fixed, new ones are appended
ACT_CODES: dict[str, int] = {k: i + 1 for i, k in enumerate(sorted(ACTIVATION_FLOPS))}
#: the names of :attr:`Kernel.features`, in the order of :meth:`Kernel.vector`
FEATURES: tuple[str, ...] = (
    "batch", "cin", "hin", "win", "cout", "hout", "wout", "kernel", "stride", "groups", "has_norm", "act",
    "has_add", "itemsize", "channels_last", "macs", "flops", "bytes_read", "bytes_written", "intensity", "launches",
)


@dataclass(frozen=True)
class FusionRules:
    """How many kernels a device kind launches for a unit, per execution mode.

    ``no_kernel``: ops that are views (no launch). ``fuse_pointwise``: the pointwise chain after
    a library kernel runs as one generated kernel (torch.compile / Inductor), else one launch per
    op (eager)."""

    device_kind: str
    mode: str
    no_kernel: frozenset[str]
    fuse_pointwise: bool

    def launches(self, ops: list[Op]) -> int:
        library = sum(1 for op in ops if op.kind not in POINTWISE_OPS and op.kind not in self.no_kernel)
        pointwise = sum(1 for op in ops if op.kind in POINTWISE_OPS)
        if self.fuse_pointwise:
            return library + (1 if pointwise else 0)
        return library + pointwise


RULES: dict[tuple[str, str], FusionRules] = {
    (kind, mode): FusionRules(kind, mode, VIEWS, mode == "compiled")
    for kind in ("cpu", "cuda") for mode in ("eager", "compiled")
}


def rules_for(device: str, compiled: bool = False) -> FusionRules:
    """The rule set of a device string (``cpu``, ``cuda:1``) and execution mode."""
    kind = device.split(":", 1)[0]
    key = (kind, "compiled" if compiled else "eager")
    if key not in RULES:
        raise ValueError(f"no fusion rules for device kind {kind!r} (known: cpu, cuda)")
    return RULES[key]


@dataclass(frozen=True)
class Kernel:
    """One unit: its type (``conv``, ``pwconv``, ``dwconv``, ``gconv``, ``linear``, ``se``,
    ``pool``, ``gap``, ``add``, ``eltwise``, ``concat``, ``copy``, ``norm``, ``matmul``,
    ``softmax``), its ops (in execution order) and its features."""

    type: str
    ops: tuple[Op, ...]
    features: dict[str, float] = field(hash=False, compare=False)

    def vector(self) -> list[float]:
        return [float(self.features[name]) for name in FEATURES]

    def identity(self) -> tuple[Any, ...]:
        """Equal for two units that time the same (shapes, attrs, kinds; not module paths)."""
        return (self.type, tuple((op.kind, op.inputs, op.outputs, op.weights, op.attrs) for op in self.ops),
                int(self.features["itemsize"]), int(self.features["channels_last"]))


_TYPE_OF = {
    "linear": "linear", "matmul": "matmul", "max_pool2d": "pool", "avg_pool2d": "pool",
    "adaptive_avg_pool2d": "gap", "mean": "gap", "concat": "concat", "copy": "copy", "layer_norm": "norm",
    "softmax": "softmax",
}


def _se_end(ops: list[Op], i: int) -> int | None:
    """Index of the gating multiply when ``ops[i]`` (a global pool) begins a squeeze-excite:
    every op up to it works on [N, C, 1, 1] maps, and the multiply reads the pool's input."""
    pool = ops[i]
    if pool.kind not in ("adaptive_avg_pool2d", "mean") or len(pool.outputs[0]) != 4:
        return None
    if pool.outputs[0][2:] != (1, 1):
        return None
    for j in range(i + 1, min(len(ops), i + 8)):
        op = ops[j]
        if op.kind == "mul" and pool.input_ids and pool.input_ids[0] in op.input_ids:
            return j if j > i + 1 else None
        if op.kind not in ("conv2d", *ACTIVATION_FLOPS) or op.outputs[0][2:] != (1, 1):
            return None
    return None


def group_ops(ops: list[Op]) -> list[tuple[str, list[Op]]]:
    """The units of an op list, in execution order: (type, ops). Every op lands in exactly one
    unit; a view (``split``) joins no unit."""
    units: list[tuple[str, list[Op]]] = []
    open_ids: set[int] = set()  # the output of the unit being built (pointwise ops extend it)
    i = 0
    while i < len(ops):
        op = ops[i]
        if op.kind in VIEWS:
            open_ids = set()
            i += 1
            continue
        end = _se_end(ops, i)
        if end is not None:
            units.append(("se", list(ops[i:end + 1])))
            open_ids = set(ops[end].output_ids)
            i = end + 1
            continue
        if op.kind in POINTWISE_OPS and units and open_ids and open_ids & set(op.input_ids):
            units[-1][1].append(op)
            open_ids = set(op.output_ids)
            i += 1
            continue
        if op.kind == "conv2d":
            unit_type = conv_type(op)
        elif op.kind in POINTWISE_OPS:
            unit_type = "add" if op.kind == "add" and len(op.inputs) == 2 else "eltwise"
        else:
            unit_type = _TYPE_OF.get(op.kind, op.kind)
        units.append((unit_type, [op]))
        open_ids = set(op.output_ids)
        i += 1
    return units


def _features(unit_type: str, ops: list[Op], itemsize: int, channels_last: bool,
              rules: FusionRules) -> dict[str, float]:
    head = ops[0]
    x = head.inputs[0]
    y = ops[-1].outputs[0]

    def dims(shape: Shape) -> tuple[int, int, int, int]:
        if len(shape) == 4:
            return shape[0], shape[1], shape[2], shape[3]
        if len(shape) == 3:
            return shape[0], shape[2], shape[1], 1
        if len(shape) == 2:
            return shape[0], shape[1], 1, 1
        return (shape[0] if shape else 1), 1, 1, 1

    n, cin, hin, win = dims(x)
    _, cout, hout, wout = dims(y)
    conv = next((op for op in ops if op.kind == "conv2d"), None)
    pool = next((op for op in ops if op.kind in ("max_pool2d", "avg_pool2d")), None)
    sized = conv or pool
    if conv is not None:
        kernel = conv.weights[0][2]
        groups = int(conv.attr("groups", 1))
    else:
        kernel = (pool.attr("kernel_size") or (1, 1))[0] if pool is not None else 1
        groups = 1
    stride = (sized.attr("stride") or (1, 1))[0] if sized is not None else 1
    acts = [op.kind for op in ops if op.kind in ACTIVATION_FLOPS]
    macs = flops = read = written = 0
    for op in ops:
        c = op_cost(op)
        macs += c.macs
        flops += c.flops
        read += c.read
        written += c.written
    bytes_read, bytes_written = read * itemsize, written * itemsize
    return {
        "batch": n, "cin": cin, "hin": hin, "win": win, "cout": cout, "hout": hout, "wout": wout,
        "kernel": kernel, "stride": stride, "groups": groups,
        "has_norm": float(any(op.kind in ("batch_norm", "layer_norm") for op in ops)),
        "act": float(ACT_CODES.get(acts[0], 0)) if acts else 0.0,
        "has_add": float(any(op.kind == "add" for op in ops)),
        "itemsize": itemsize, "channels_last": float(channels_last),
        "macs": macs, "flops": flops, "bytes_read": bytes_read, "bytes_written": bytes_written,
        "intensity": flops / max(1, bytes_read + bytes_written),
        "launches": rules.launches(ops),
    }


def kernels_of_ops(ops: list[Op], *, dtype: str = "float32", channels_last: bool = False,
                   rules: FusionRules | None = None) -> list[Kernel]:
    rules = rules or RULES[("cpu", "eager")]
    itemsize = DTYPE_BYTES[dtype]
    return [Kernel(t, tuple(us), _features(t, us, itemsize, channels_last, rules)) for t, us in group_ops(ops)]


def network_kernels(spec: Spec, input_shape: Shape, *, dtype: str = "float32", device: str = "cpu",
                    compiled: bool = False) -> list[Kernel]:
    """The units of a network (or block) on ``input_shape``, block by block, in execution order.
    A unit never spans two blocks: each block is expanded on its own (the engine's memo)."""
    rules = rules_for(device, compiled)
    out: list[Kernel] = []
    for block in network_blocks(spec, input_shape):
        ops = expand_block(block.spec, block.input_shape, block.channels_last)[0]
        out.extend(kernels_of_ops(list(ops), dtype=dtype, channels_last=block.channels_last, rules=rules))
    return out


def nominal(kernel: Kernel) -> Nominal:
    """The unit's rough time on the reference ladder's nominal CPU and its dense share
    (``reference.Nominal``): only to pick a reference rung of its size and kind, never reported."""
    from cost_engine.latency.reference import nominal_of_ops

    return nominal_of_ops(kernel.ops, int(kernel.features["itemsize"]))


def log_features(kernel: Kernel) -> list[float]:
    """The feature vector a regressor sees: sizes and counts on a log scale (latency spans four
    decades across a space; a tree splits a log feature where a linear one would need many)."""
    logged = {"cin", "hin", "win", "cout", "hout", "wout", "batch", "macs", "flops", "bytes_read", "bytes_written",
              "groups"}
    return [math.log1p(v) if name in logged else v for name, v in zip(FEATURES, kernel.vector(), strict=True)]
