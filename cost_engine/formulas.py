"""The one registry of per-op cost formulas.

Every number the oracle reports for a static cost is a sum of what these functions return;
nothing else in the code base may compute MACs or FLOPs of an op. Expansion and tracing only
produce :class:`~cost_engine.ops.Op` records; reports, views and latency predictions add up or
re-weight the :class:`OpCost` returned here.

Canonical operand conventions (the tracer normalizes aten calls to these):

* ``conv2d``: inputs ``(x[N,C,H,W],)``, weights ``(w[Co,Ci/g,kh,kw][, b[Co]])``, attrs stride,
  padding, dilation, groups.
* ``linear``: 2-D, inputs ``(x[rows,in],)``, weights ``(w[out,in][, b[out]])``, outputs
  ``(y[rows,out],)``; a linear on ``[..., in]`` is flattened to rows = product of leading dims.
* ``matmul``: 3-D, ``a[b,m,k] @ b[b,k,n] -> [b,m,n]`` with b the product of leading dims.
* Elementwise and normalization ops: inputs/outputs as they are; a learnable operand (layer
  scale, norm affine) is a weight, BN running stats are buffers.
* ``split`` is a view: it moves no data. ``copy`` (``contiguous``/``clone``) and ``concat`` do.

FLOPs per element of the output (inputs for reductions), the convention table of the docs:
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod

from cost_engine.ops import Op, numel

#: FLOPs per output element of pointwise activations. Counted as the scalar operations of the
#: textbook definition (e.g. sigmoid = neg, exp, add, reciprocal; SiLU = sigmoid + mul).
ACTIVATION_FLOPS: dict[str, int] = {
    "relu": 1,
    "relu6": 2,
    "sigmoid": 4,
    "silu": 5,
    "hardsigmoid": 3,
    "hardswish": 4,
    "tanh": 5,
    "gelu": 8,
}

#: FLOPs per output element of other non-MAC ops.
ELEMENTWISE_FLOPS: dict[str, int] = {
    "add": 1,
    "sub": 1,
    "mul": 1,
    "div": 1,
    "batch_norm": 2,  # eval: statistics fold into one scale and one shift per channel
    "layer_norm": 5,  # mean, subtract, square, variance accumulate, scale (+2 with affine)
    "softmax": 5,  # max, subtract, exp, sum, divide
}

#: Ops that compute nothing and exist only for the memory traffic they cause (or do not cause).
DATA_MOVEMENT: frozenset[str] = frozenset({"copy", "concat", "split"})
#: Ops that are views: no FLOPs and no memory traffic, listed so the breakdown shows them.
VIEWS: frozenset[str] = frozenset({"split"})
#: Ops whose multiply-accumulates are the MACs of the report.
MAC_OPS: frozenset[str] = frozenset({"conv2d", "linear", "matmul"})


@dataclass(slots=True)
class OpCost:
    """Counts for one op; memory in elements (bytes = elements * dtype size).

    Treated as immutable; not ``frozen`` because a frozen ``__init__`` costs ~8x more and one is
    made per op of every new block."""

    macs: int
    flops: int
    params: int
    buffers: int
    read: int
    written: int


Formula = Callable[[Op], tuple[int, int]]
FORMULAS: dict[str, Formula] = {}


def formula(*kinds: str) -> Callable[[Formula], Formula]:
    """Register the (macs, flops) function of one or more op kinds."""

    def register(fn: Formula) -> Formula:
        for kind in kinds:
            if kind in FORMULAS:
                raise ValueError(f"formula for {kind!r} registered twice")
            FORMULAS[kind] = fn
        return fn

    return register


class UnknownOpError(KeyError):
    """Raised for an op kind without a formula (the strict mode of the tracer surfaces it)."""


def op_cost(op: Op) -> OpCost:
    try:
        fn = FORMULAS[op.kind]
    except KeyError:
        raise UnknownOpError(op.kind) from None
    macs, flops = fn(op)
    # explicit loops: this runs for every op of every candidate, generators cost ~2x here
    params = 0
    for w in op.weights:
        params += prod(w)
    buffers = 0
    for b in op.buffers:
        buffers += prod(b)
    if op.kind in VIEWS:
        return OpCost(macs, flops, params, buffers, 0, 0)
    read = params + buffers
    for shape in op.inputs:
        read += prod(shape)
    written = 0
    for shape in op.outputs:
        written += prod(shape)
    return OpCost(macs, flops, params, buffers, read, written)


def _has_bias(op: Op) -> bool:
    return len(op.weights) > 1


@formula("conv2d")
def _conv2d(op: Op) -> tuple[int, int]:
    w = op.weights[0]
    out = numel(op.outputs[0])
    macs = out * w[1] * w[2] * w[3]
    return macs, 2 * macs + (out if _has_bias(op) else 0)


@formula("linear")
def _linear(op: Op) -> tuple[int, int]:
    rows, out_features = op.outputs[0]
    in_features = op.inputs[0][1]
    macs = rows * in_features * out_features
    return macs, 2 * macs + (rows * out_features if _has_bias(op) else 0)


@formula("matmul")
def _matmul(op: Op) -> tuple[int, int]:
    batch, m, k = op.inputs[0]
    n = op.inputs[1][2]
    macs = batch * m * k * n
    return macs, 2 * macs


@formula(*ACTIVATION_FLOPS)
def _activation(op: Op) -> tuple[int, int]:
    return 0, ACTIVATION_FLOPS[op.kind] * numel(op.outputs[0])


@formula("add", "sub", "mul", "div", "batch_norm", "softmax")
def _elementwise(op: Op) -> tuple[int, int]:
    return 0, ELEMENTWISE_FLOPS[op.kind] * numel(op.outputs[0])


@formula("layer_norm")
def _layer_norm(op: Op) -> tuple[int, int]:
    per_element = ELEMENTWISE_FLOPS["layer_norm"] + (2 if op.weights else 0)
    return 0, per_element * numel(op.outputs[0])


@formula("avg_pool2d")
def _avg_pool(op: Op) -> tuple[int, int]:
    kh, kw = op.attr("kernel_size")
    return 0, kh * kw * numel(op.outputs[0])


@formula("max_pool2d")
def _max_pool(op: Op) -> tuple[int, int]:
    kh, kw = op.attr("kernel_size")
    return 0, (kh * kw - 1) * numel(op.outputs[0])


@formula("adaptive_avg_pool2d", "mean")
def _reduce_mean(op: Op) -> tuple[int, int]:
    # one add per input element, the divides folded in (output << input for global pooling)
    return 0, numel(op.inputs[0])


@formula(*DATA_MOVEMENT)
def _data_movement(op: Op) -> tuple[int, int]:
    return 0, 0
