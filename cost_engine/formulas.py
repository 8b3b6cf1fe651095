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
    "log_softmax": 5,  # max, subtract, exp, sum, subtract the log
}

#: FLOPs per output element of other pointwise ops, one per scalar operation: comparisons and
#: selects are one, ``clamp`` two (a min and a max), ``addcmul``/``addcdiv``/``lerp`` three,
#: ``leaky_relu`` two (a compare and a multiply), ``elu`` four (compare, exp, subtract, multiply)
POINTWISE_FLOPS: dict[str, int] = {
    "exp": 1, "log": 1, "sqrt": 1, "rsqrt": 1, "reciprocal": 1, "pow": 1, "sin": 1, "cos": 1, "abs": 1, "neg": 1,
    "erf": 1, "sign": 1, "floor": 1, "round": 1, "maximum": 1, "minimum": 1, "clamp_min": 1, "clamp_max": 1,
    "clamp": 2, "compare": 1, "where": 1, "masked_fill": 1, "logical": 1, "addcmul": 3, "addcdiv": 3, "lerp": 3,
    "leaky_relu": 2, "elu": 4, "softplus": 3, "mish": 8, "cumsum": 1,
}

#: FLOPs per *input* element of reductions: one add or compare each; a p-norm also squares (or
#: takes the absolute value), a variance also subtracts the mean and squares
REDUCTION_FLOPS: dict[str, int] = {"sum": 1, "amax": 1, "amin": 1, "vector_norm": 2, "var": 3}

#: normalizations over statistics of the input (per sample, group or instance), like layer_norm
STAT_NORMS: frozenset[str] = frozenset({"layer_norm", "group_norm", "instance_norm"})

#: FLOPs per output element of an upsampling, by mode: an interpolation over 2^d (bicubic: 16)
#: neighbours is that many multiplies and one add fewer
UPSAMPLE_FLOPS: dict[str, int] = {"nearest": 0, "nearest_exact": 0, "linear": 3, "bilinear": 7, "trilinear": 15,
                                  "bicubic": 31}

#: FLOPs per hidden unit per timestep of a recurrent cell, besides its matrix products and biases:
#: LSTM: 4 gate sums (input and hidden parts), 3 sigmoids, 2 tanh, 3 multiplies, 1 add;
#: GRU: 3 gate sums, 2 sigmoids, 1 tanh, r * (W h), (1 - z) * n + z * h (1 sub, 2 mul, 1 add);
#: plain RNN: 1 sum and its nonlinearity
RNN_CELL_FLOPS: dict[str, int] = {
    "lstm": 4 + 3 * ACTIVATION_FLOPS["sigmoid"] + 2 * ACTIVATION_FLOPS["tanh"] + 3 + 1,
    "gru": 3 + 2 * ACTIVATION_FLOPS["sigmoid"] + ACTIVATION_FLOPS["tanh"] + 1 + 4,
    "rnn_tanh": 1 + ACTIVATION_FLOPS["tanh"],
    "rnn_relu": 1 + ACTIVATION_FLOPS["relu"],
}

#: Ops that compute nothing and exist only for the memory traffic they cause (or do not cause):
#: ``gather`` reads rows by index (``x[idx]``, ``index_select``, a relative-position table),
#: ``embedding`` the rows of its table that the indices name, ``pad`` writes a padded copy,
#: ``fill`` overwrites a tensor already in the data flow (``bias[a:b].zero_()``).
DATA_MOVEMENT: frozenset[str] = frozenset({"copy", "concat", "split", "gather", "embedding", "pad", "fill"})
#: Ops that are views: no FLOPs and no memory traffic, listed so the breakdown shows them.
VIEWS: frozenset[str] = frozenset({"split"})
#: Convolutions by kind: 1-, 2- and 3-D, and their transposes (``conv_transpose2d`` ...).
CONVS: frozenset[str] = frozenset({"conv1d", "conv2d", "conv3d"})
CONV_TRANSPOSES: frozenset[str] = frozenset({"conv_transpose1d", "conv_transpose2d", "conv_transpose3d"})
#: Ops whose multiply-accumulates are the MACs of the report.
MAC_OPS: frozenset[str] = frozenset({"linear", "matmul", "attention", *CONVS, *CONV_TRANSPOSES, *RNN_CELL_FLOPS})
#: Ops whose outputs are the report's ``activations`` (fvcore's activation count: conv and linear outputs)
ACTIVATION_OPS: frozenset[str] = frozenset({"linear", *CONVS, *CONV_TRANSPOSES})


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
    return _with_memory(op, macs, flops)


def unknown_op_cost(op: Op) -> OpCost:
    """An op without a formula: no MACs or FLOPs are known, but the parameters it reads are
    still the module's and the data it moves is still moved (the report marks itself partial)."""
    return _with_memory(op, 0, 0)


def _with_memory(op: Op, macs: int, flops: int) -> OpCost:
    """Params, buffers and memory traffic of ``op``. A traced op that reads a parameter already
    charged to an earlier op (a shared or tied weight, a recurrent step) or a slice of one carries
    the elements it charges as ``params``/``buffers`` attrs; it still reads what it reads."""
    # explicit loops: this runs for every op of every candidate, generators cost ~2x here
    weight_elems = 0
    for w in op.weights:
        weight_elems += prod(w)
    buffer_elems = 0
    for b in op.buffers:
        buffer_elems += prod(b)
    params, buffers = weight_elems, buffer_elems
    if op.attrs:
        for key, value in op.attrs:
            if key == "params":
                params = value
            elif key == "buffers":
                buffers = value
    if op.kind in VIEWS:
        return OpCost(macs, flops, params, buffers, 0, 0)
    read = weight_elems + buffer_elems
    for shape in op.inputs:
        read += prod(shape)
    written = 0
    for shape in op.outputs:
        written += prod(shape)
    return OpCost(macs, flops, params, buffers, read, written)


def _has_bias(op: Op) -> bool:
    return len(op.weights) > 1


@formula(*CONVS)
def _conv(op: Op) -> tuple[int, int]:
    """Each output element: ``C_in / groups`` times the kernel's taps (``w[C_out, C_in/g, k...]``)."""
    w = op.weights[0]
    out = numel(op.outputs[0])
    macs = out * prod(w[1:])
    return macs, 2 * macs + (out if _has_bias(op) else 0)


@formula(*CONV_TRANSPOSES)
def _conv_transpose(op: Op) -> tuple[int, int]:
    """Each *input* element is scattered to ``C_out / groups`` times the kernel's taps
    (``w[C_in, C_out/g, k...]``); taps that land in the cropped padding still count."""
    w = op.weights[0]
    macs = numel(op.inputs[0]) * prod(w[1:])
    return macs, 2 * macs + (numel(op.outputs[0]) if _has_bias(op) else 0)


@formula("attention")
def _attention(op: Op) -> tuple[int, int]:
    """Scaled dot-product attention, ``q[..., L, E]``, ``k[..., S, E]``, ``v[..., S, Ev]``: the
    scores ``q k^T`` and their product with ``v``, plus the scale and the softmax over ``S`` (and
    the mask's add when one is given). Counted as computed, whichever kernel (math, flash,
    memory-efficient) runs it; the score matrix is not counted as memory traffic."""
    q, k, v = op.inputs[0], op.inputs[1], op.inputs[2]
    batch = prod(q[:-2])
    scores = batch * q[-2] * k[-2]
    macs = scores * (q[-1] + v[-1])
    per_score = 1 + ELEMENTWISE_FLOPS["softmax"] + (1 if len(op.inputs) > 3 else 0)
    return macs, 2 * macs + per_score * scores


@formula(*RNN_CELL_FLOPS)
def _recurrent(op: Op) -> tuple[int, int]:
    """A recurrent layer stack over a whole sequence: every 2-D weight (input, hidden and
    projection matrices of every layer and direction) multiplies one vector per timestep and
    sequence; biases add once per step; the cell's pointwise work is per hidden unit per step."""
    steps = op.attr("steps") * op.attr("batch")
    macs = 0
    bias = 0
    for w in op.weights:
        if len(w) == 2:
            macs += w[0] * w[1]
        else:
            bias += prod(w)
    macs *= steps
    cells = op.attr("hidden") * op.attr("layers") * op.attr("directions")
    return macs, 2 * macs + steps * (bias + RNN_CELL_FLOPS[op.kind] * cells)


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


@formula("add", "sub", "mul", "div", "softmax", "log_softmax")
def _elementwise(op: Op) -> tuple[int, int]:
    return 0, ELEMENTWISE_FLOPS[op.kind] * numel(op.outputs[0])


@formula("batch_norm")
def _batch_norm(op: Op) -> tuple[int, int]:
    """Eval batch norm folds into a scale and a shift; one that computes its statistics from its
    input (``training`` attr: weight standardization) costs what a layer norm does."""
    if op.attrs and op.attr("training"):
        return _stat_norm(op)
    return 0, ELEMENTWISE_FLOPS["batch_norm"] * numel(op.outputs[0])


@formula(*POINTWISE_FLOPS)
def _pointwise(op: Op) -> tuple[int, int]:
    return 0, POINTWISE_FLOPS[op.kind] * numel(op.outputs[0])


@formula(*REDUCTION_FLOPS)
def _reduction(op: Op) -> tuple[int, int]:
    return 0, REDUCTION_FLOPS[op.kind] * numel(op.inputs[0])


@formula(*STAT_NORMS)
def _stat_norm(op: Op) -> tuple[int, int]:
    """Layer, group and instance norm: statistics over part of the input, then normalize."""
    per_element = ELEMENTWISE_FLOPS["layer_norm"] + (2 if op.weights or (op.attrs and op.attr("affine")) else 0)
    return 0, per_element * numel(op.outputs[0])


@formula("upsample")
def _upsample(op: Op) -> tuple[int, int]:
    return 0, UPSAMPLE_FLOPS[op.attr("mode")] * numel(op.outputs[0])


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
