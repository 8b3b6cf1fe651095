"""What each aten call becomes: the tracer's half of the operand conventions in formulas.py.

Each handler gets the call and its result (already computed on meta tensors) and appends the
canonical :class:`~cost_engine.ops.Op` that :class:`~cost_engine.expand.emitter.Emitter` would
append for the same computation, or nothing. Both the high-level composite ops that the tracer
sees under ``inference_mode`` (``aten.linear``, ``aten.conv2d``, ``aten.batch_norm`` ...) and
their decompositions (``addmm``/``mm``/``bmm``, ``convolution``, ``native_batch_norm``,
``max_pool2d_with_indices`` ...) are handled, so a module that calls the low-level ops directly
is counted the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch._prims_common import suggest_memory_format

from cost_engine.ops import Shape, make_attrs
from cost_engine.trace.recorder import WEIGHT, Handler, Recorder, storage_key

aten = torch.ops.aten

HANDLERS: dict[Any, Handler] = {}

#: Allocations and their initializers: no op, their storage enters the data flow on first use.
#: (An initializer on a tensor already in the data flow is real work and is not ignored.)
IGNORED: frozenset = frozenset({
    aten.empty, aten.empty_like, aten.empty_strided, aten.zeros, aten.zeros_like, aten.ones,
    aten.ones_like, aten.full, aten.full_like, aten.new_empty, aten.new_empty_strided, aten.new_zeros,
    aten.new_ones, aten.new_full, aten.arange, aten.scalar_tensor, aten.lift_fresh, aten.lift_fresh_copy,
    aten.fill_, aten.zero_, aten.rand, aten.randn, aten.rand_like, aten.randn_like, aten.normal_,
    aten.uniform_,
})


def _like_input(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A fresh result in the layout eager kernels pick for ``x`` (``suggest_memory_format``)."""
    return torch.empty(tuple(shape), dtype=x.dtype, device=x.device, memory_format=suggest_memory_format(x))


def _fast_batch_norm(args: tuple, kwargs: dict) -> torch.Tensor:
    x = args[0] if args else kwargs["input"]
    return _like_input(x, x.shape)


def _fast_layer_norm(args: tuple, kwargs: dict) -> torch.Tensor:
    """Eager CPU layer norm writes a contiguous result whatever the input's layout."""
    x = args[0] if args else kwargs["input"]
    return torch.empty(tuple(x.shape), dtype=x.dtype, device=x.device)


def _fast_product(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """``mm``/``bmm`` (and ``addmm``'s product): a contiguous ``[..., n, p]`` result."""
    a, b = (args[1], args[2]) if len(args) >= 3 else (args[0], args[1])
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.dim() != b.dim() or a.dim() not in (2, 3):
        return None
    if a.shape[-1] != b.shape[-2] or (a.dim() == 3 and a.shape[0] != b.shape[0]):
        return None  # let the real kernel raise its error
    return torch.empty((*a.shape[:-1], b.shape[-1]), dtype=a.dtype, device=a.device)


def _fast_adaptive_avg_pool2d(args: tuple, kwargs: dict) -> torch.Tensor:
    x = args[0] if args else kwargs["input"]
    size = args[1] if len(args) > 1 else kwargs["output_size"]
    return _like_input(x, (*x.shape[:-2], *pair(size)))


def _fast_conv2d(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The layout eager CPU (oneDNN) and CUDA (cuDNN) convs give: channels-last when the input or
    the weight is, which the meta kernel does not reproduce (it returns contiguous outputs)."""
    a = bind(aten.conv2d.default, args, kwargs)
    x, w = a["input"], a["weight"]
    if isinstance(a["padding"], str) or x.dim() != 4 or w.dim() != 4:
        return None
    (sh, sw), (ph, pw), (dh, dw) = pair(a["stride"]), pair(a["padding"]), pair(a["dilation"])
    kh, kw = w.shape[2:]
    ho = (x.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (x.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1 or x.shape[1] != w.shape[1] * int(a["groups"]):
        return None  # let the real kernel raise its error
    last = torch.channels_last in (suggest_memory_format(x), suggest_memory_format(w))
    return torch.empty((x.shape[0], w.shape[0], ho, wo), dtype=x.dtype, device=x.device,
                       memory_format=torch.channels_last if last else torch.contiguous_format)


#: Result-only stand-ins for kernels whose meta version is slow (a meta ``batch_norm``,
#: ``layer_norm`` or ``addmm`` is a Python decomposition costing up to milliseconds) or lays its
#: result out unlike eager (conv): they produce the shape, dtype and strides eager CPU does, which
#: a test checks against real CPU kernels. ``None`` means "run the real meta kernel".
FAST_KERNELS: dict[Any, Callable[[tuple, dict], Any]] = {
    aten.batch_norm: _fast_batch_norm,
    aten.layer_norm: _fast_layer_norm,
    aten.mm: _fast_product,
    aten.bmm: _fast_product,
    aten.addmm: _fast_product,
    aten.adaptive_avg_pool2d: _fast_adaptive_avg_pool2d,
    aten.conv2d: _fast_conv2d,
}


def handles(*packets: Any) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for p in packets:
            HANDLERS[p] = fn
        return fn

    return deco


# -- argument helpers ---------------------------------------------------------------------
@functools.cache
def _signature(func: Any) -> tuple[tuple[str, bool, Any], ...]:
    return tuple((a.name, a.kwarg_only, a.default_value if a.has_default_value() else None)
                 for a in func._schema.arguments)


def bind(func: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Arguments by schema name, defaults filled in."""
    bound = {}
    for i, (name, kwarg_only, default) in enumerate(_signature(func)):
        if i < len(args) and not kwarg_only:
            bound[name] = args[i]
        else:
            bound[name] = kwargs.get(name, default)
    return bound


def shape(t: torch.Tensor) -> Shape:
    return tuple(t.shape)


def pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = list(v)
    return (int(v[0]), int(v[0])) if len(v) == 1 else (int(v[0]), int(v[1]))


def first(out: Any) -> torch.Tensor:
    """The main result of ops that also return saved statistics or indices."""
    return out[0] if isinstance(out, (tuple, list)) else out


def param_shape(rec: Recorder, t: torch.Tensor, used: Shape | None = None) -> Shape:
    """A learnable operand's shape (:meth:`Recorder.weight_shape`: the original parameter's through
    a view of all of it, the slice's for a slice), noted as read by the op being built."""
    return rec.weight_shape(t, used)


def _tensors(values: Sequence[Any]) -> list[torch.Tensor]:
    return [v for v in values if isinstance(v, torch.Tensor) and not _wrapped_number(v)]


def _wrapped_number(t: torch.Tensor) -> bool:
    return t.dim() == 0 and t.device.type == "cpu"


# -- conv, linear, matmul -----------------------------------------------------------------
def _spatial(v: Any, n: int) -> tuple[int, ...]:
    """A conv's per-dimension setting (an int, or a list of 1 or ``n``) as ``n`` ints."""
    if isinstance(v, int):
        return (v,) * n
    v = [int(e) for e in v]
    return tuple(v) * n if len(v) == 1 else tuple(v)


@handles(aten.conv1d, aten.conv2d, aten.conv3d, aten.convolution, aten._convolution, aten.conv_transpose1d,
         aten.conv_transpose2d, aten.conv_transpose3d)
def _conv(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """Any convolution: ``conv{1,2,3}d`` and ``conv_transpose{1,2,3}d`` (an unbatched input, one
    dimension short, is counted as a batch of one)."""
    a = bind(func, args, kwargs)
    x, w, b = a["input"], a["weight"], a["bias"]
    n = w.dim() - 2
    transposed = bool(a.get("transposed")) or func.overloadpacket in (
        aten.conv_transpose1d, aten.conv_transpose2d, aten.conv_transpose3d)
    if n not in (1, 2, 3):
        rec.unknown(func, args, kwargs, out)
        return
    stride, dilation = _spatial(a["stride"], n), _spatial(a["dilation"], n)
    if isinstance(a["padding"], str):  # conv{n}d.padding: "valid" or "same"
        same = a["padding"] == "same"
        padding = tuple(d * (k - 1) // 2 if same else 0 for d, k in zip(dilation, w.shape[2:], strict=True))
    else:
        padding = _spatial(a["padding"], n)
    weights = [param_shape(rec, w)] + ([param_shape(rec, b)] if b is not None else [])
    settings: dict[str, Any] = {"stride": stride, "padding": padding, "dilation": dilation, "groups": int(a["groups"])}
    if transposed:
        settings["output_padding"] = _spatial(a.get("output_padding") or 0, n)
    xs, ys = shape(x), shape(out)
    if len(xs) == n + 1:  # unbatched
        xs, ys = (1, *xs), (1, *ys)
    kind = f"conv_transpose{n}d" if transposed else f"conv{n}d"
    rec.emit(kind, [(x, xs)], [(out, ys)], weights, attrs=make_attrs(**settings))


#: Composite ops recorded through their decomposition, because what they run depends on the
#: operands: ``linear``/``matmul`` fold batch dims with ``reshape``, which copies a non-viewable
#: input (attention's ``q``/``k^T``/``v`` at batch > 1), and add a bias by ``addmm`` or ``add_``.
DECOMPOSED: frozenset = frozenset({aten.linear, aten.matmul})


@handles(aten.mm, aten.bmm, aten.mv, aten.dot)
def _mm(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    _product(rec, args[0], args[1], out, None)


@handles(aten.addmm)
def _addmm(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    _product(rec, args[1], args[2], out, args[0])


def _emit_linear(rec: Recorder, x: torch.Tensor, in_features: int, w: torch.Tensor, b: torch.Tensor | None,
                 out: torch.Tensor) -> None:
    """``linear`` flattened to 2-D: rows = every output element but the feature dim."""
    out_features = out.shape[-1] if out.dim() else 1
    rows = out.numel() // out_features if out_features else 0
    weights = ([param_shape(rec, w, (out_features, in_features))]
               + ([param_shape(rec, b, (out_features,))] if b is not None else []))
    rec.emit("linear", [(x, (rows, in_features))], [(out, (rows, out_features))], weights)


def _product(rec: Recorder, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, bias: torch.Tensor | None) -> None:
    """A matrix product: ``linear`` when one side is a 2-D parameter, else a 3-D batched ``matmul``."""
    oa, ob = rec.origin(a), rec.origin(b)
    # a buffer input times a weight (Swin V2's coordinate table through its MLP) is still a linear
    if oa is not None and ob is not None and (oa[0] == WEIGHT) != (ob[0] == WEIGHT):
        oa, ob = (oa, None) if oa[0] == WEIGHT else (None, ob)
    if ob is not None and oa is None and len(ob[1]) == 2:  # x[..., k] @ W^T[k, n] (W^T maybe expanded)
        _emit_linear(rec, a, a.shape[-1], b, bias, out)
        return
    if oa is not None and ob is None and len(oa[1]) == 2 and b.dim() >= 2:  # W[m, k] @ x[..., k, n]
        m, k = a.shape[-2:]
        rows = out.numel() // m if m else 0
        weights = [param_shape(rec, a, (m, k))] + ([param_shape(rec, bias, (m,))] if bias is not None else [])
        rec.emit("linear", [(b, (rows, k))], [(out, (rows, m))], weights)
        return
    m, k = (1, a.shape[0]) if a.dim() == 1 else (a.shape[-2], a.shape[-1])
    n = 1 if b.dim() == 1 else b.shape[-1]
    batch = out.numel() // (m * n) if m * n else 1
    rec.emit("matmul", [(a, (batch, m, k)), (b, (batch, k, n))], [(out, (batch, m, n))])
    if bias is not None:
        acts, weights, buffers = rec.split_operands([bias])
        rec.emit("add", [(out, shape(out)), *acts], [(out, shape(out))], weights, buffers)


# -- normalization --------------------------------------------------------------------------
@handles(aten.batch_norm, aten.native_batch_norm, aten._native_batch_norm_legit,
         aten._native_batch_norm_legit_no_training, aten.cudnn_batch_norm)
def _batch_norm(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """Batch norm; one that computes its statistics from the input (``training=True`` in an eval
    model: weight standardization) is marked ``training``, a normalization over statistics."""
    a = bind(func, args, kwargs)
    training = bool(a.get("training")) or (func.overloadpacket is aten._native_batch_norm_legit
                                           and a.get("running_mean") is None)
    _norm(rec, "batch_norm", a["input"], [a["weight"], a["bias"]],
          [a.get("running_mean"), a.get("running_var")] if not training else [], first(out),
          make_attrs(training=True) if training else ())


@handles(aten.layer_norm, aten.native_layer_norm)
def _layer_norm(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    a = bind(func, args, kwargs)
    _norm(rec, "layer_norm", a["input"], [a["weight"], a["bias"]], [], first(out))


@handles(aten.group_norm, aten.native_group_norm)
def _group_norm(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    a = bind(func, args, kwargs)
    _norm(rec, "group_norm", a["input"], [a["weight"], a["bias"]], [], first(out))


@handles(aten.instance_norm)
def _instance_norm(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    a = bind(func, args, kwargs)
    stats = [a["running_mean"], a["running_var"]] if not a["use_input_stats"] else []
    _norm(rec, "instance_norm", a["input"], [a["weight"], a["bias"]], stats, first(out))


def _norm(rec: Recorder, kind: str, x: torch.Tensor, affine: list[Any], stats: list[Any],
          y: torch.Tensor, attrs: tuple = ()) -> None:
    """An affine operand computed in the forward (NFNet's ``gain * scale``) is data, not a weight:
    the op is marked ``affine`` so formulas and views still see the affine transform."""
    acts, weights, buffers = rec.split_operands(_tensors(affine))
    if acts and not weights:
        attrs = tuple(sorted((*attrs, ("affine", True))))
    stat_acts, stat_weights, stat_buffers = rec.split_operands(_tensors(stats))
    rec.emit(kind, [(x, shape(x)), *acts, *stat_acts], [(y, shape(y))], weights + stat_weights,
             buffers + stat_buffers, attrs=attrs)


# -- pointwise ------------------------------------------------------------------------------
ACTIVATIONS: dict[Any, str] = {
    aten.relu: "relu", aten.relu_: "relu", aten.relu6: "relu6", aten.relu6_: "relu6",
    aten.silu: "silu", aten.silu_: "silu", aten.gelu: "gelu", aten.gelu_: "gelu",
    aten.sigmoid: "sigmoid", aten.sigmoid_: "sigmoid", aten.hardswish: "hardswish",
    aten.hardswish_: "hardswish", aten.hardsigmoid: "hardsigmoid", aten.hardsigmoid_: "hardsigmoid",
    aten.tanh: "tanh", aten.tanh_: "tanh",
}


@handles(*ACTIVATIONS)
def _activation(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    rec.emit(ACTIVATIONS[func.overloadpacket], [(x, shape(x))], [(out, shape(out))])


@handles(aten.hardtanh, aten.hardtanh_)
def _hardtanh(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    a = bind(func, args, kwargs)
    if (a["min_val"], a["max_val"]) != (0, 6):
        rec.unknown(func, args, kwargs, out)
        return
    x = a["self"]
    rec.emit("relu6", [(x, shape(x))], [(out, shape(out))])


def _packets(names: str, kind: str) -> dict[Any, str]:
    """aten packets by name (with their in-place ``name_`` twins where torch has them) -> ``kind``."""
    out = {}
    for name in names.split():
        for variant in (name, f"{name}_"):
            packet = getattr(aten, variant, None)
            if packet is not None:
                out[packet] = kind
    return out


#: pointwise ops without their own handler -> their kind in ``POINTWISE_FLOPS``
POINTWISE: dict[Any, str] = {
    **{p: k for name in ("exp", "log", "sqrt", "rsqrt", "reciprocal", "pow", "sin", "cos", "abs", "neg", "erf",
                         "sign", "floor", "round", "maximum", "minimum", "clamp_min", "clamp_max", "clamp", "where",
                         "masked_fill", "addcmul", "addcdiv", "lerp", "leaky_relu", "elu", "softplus", "mish", "cumsum")
       for p, k in _packets(name, name).items()},
    **_packets("eq ne lt le gt ge", "compare"),
    **_packets("logical_and logical_or logical_not logical_xor bitwise_not bitwise_and bitwise_or", "logical"),
}


@handles(*POINTWISE)
def _pointwise(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    acts, weights, buffers = rec.split_operands(_tensors(list(args)))
    y = first(out)
    rec.emit(POINTWISE[func.overloadpacket], acts, [(y, shape(y))], weights, buffers)


#: reductions without their own handler -> their kind in ``REDUCTION_FLOPS``
REDUCTIONS: dict[Any, str] = {aten.sum: "sum", aten.amax: "amax", aten.amin: "amin", aten.max: "amax",
                              aten.min: "amin", aten.linalg_vector_norm: "vector_norm", aten.norm: "vector_norm",
                              aten.var: "var", aten.std: "var", aten.var_mean: "var", aten.std_mean: "var"}


@handles(*REDUCTIONS)
def _reduce(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    if len(args) > 1 and isinstance(args[1], torch.Tensor):  # max(a, b), min(a, b): pointwise
        acts, weights, buffers = rec.split_operands(_tensors(list(args[:2])))
        rec.emit("maximum" if func.overloadpacket is aten.max else "minimum", acts, [(out, shape(out))],
                 weights, buffers)
        return
    acts, weights, buffers = rec.split_operands([x])
    outs = [t for t in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(t, torch.Tensor)]
    rec.emit(REDUCTIONS[func.overloadpacket], acts, [(t, shape(t)) for t in outs], weights, buffers)


BINARY: dict[Any, str] = {
    aten.add: "add", aten.add_: "add", aten.sub: "sub", aten.sub_: "sub", aten.rsub: "sub",
    aten.mul: "mul", aten.mul_: "mul", aten.div: "div", aten.div_: "div",
}


@handles(*BINARY)
def _binary(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """Python-number operands are dropped; a parameter operand (layer scale) is a weight."""
    kind = BINARY[func.overloadpacket]
    acts, weights, buffers = rec.split_operands(_tensors(args[:2]))
    if kind == "add" and _fold_bias(rec, acts, weights, buffers, out):
        return
    rec.emit(kind, acts, [(out, shape(out))], weights, buffers)


def _fold_bias(rec: Recorder, acts: list, weights: list[Shape], buffers: list[Shape], out: torch.Tensor) -> bool:
    """``mm`` then ``add`` of the bias (a linear on a non-contiguous input, or ``x @ W.T + b``)
    is one biased ``linear``, as ``addmm`` is."""
    if len(acts) != 1 or len(weights) != 1 or buffers or not rec.ops:
        return False
    last = rec.ops[-1]
    if (last.kind != "linear" or len(last.weights) != 1 or (last.module, last.module_type) != rec.module
            or weights[0] != (last.outputs[0][1],) or rec.tid(acts[0][0]) != last.output_ids[0]):
        return False
    rec.add_weights_to_last(weights)
    rec.alias(out, last.output_ids[0])
    return True


# -- pooling and reductions -----------------------------------------------------------------
@handles(aten.max_pool2d, aten.max_pool2d_with_indices)
def _max_pool(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    _pool(rec, "max_pool2d", bind(func, args, kwargs), first(out))


@handles(aten.avg_pool2d)
def _avg_pool(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    _pool(rec, "avg_pool2d", bind(func, args, kwargs), out)


def _pool(rec: Recorder, kind: str, a: dict[str, Any], y: torch.Tensor) -> None:
    x = a["self"]
    k = pair(a["kernel_size"])
    s = pair(a["stride"]) if a["stride"] else k
    attrs = make_attrs(kernel_size=k, stride=s, padding=pair(a["padding"]))
    rec.emit(kind, [(x, shape(x))], [(y, shape(y))], attrs=attrs)


@handles(aten.adaptive_avg_pool2d, aten._adaptive_avg_pool2d)
def _adaptive_avg_pool(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    rec.emit("adaptive_avg_pool2d", [(x, shape(x))], [(out, shape(out))],
             attrs=make_attrs(output_size=pair(args[1])))


@handles(aten.mean)
def _mean(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    a = bind(func, args, kwargs)
    x = a["self"]
    rank = max(x.dim(), 1)
    dims = a.get("dim") or range(rank)
    dims = tuple(sorted({int(d) % rank for d in dims}))
    rec.emit("mean", [(x, shape(x))], [(out, shape(out))],
             attrs=make_attrs(dims=dims, keepdim=bool(a.get("keepdim") or False)))


SOFTMAXES: dict[Any, str] = {
    aten.softmax: "softmax", aten._softmax: "softmax", aten._safe_softmax: "softmax",
    aten.log_softmax: "log_softmax", aten._log_softmax: "log_softmax",
}


@handles(*SOFTMAXES)
def _softmax(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """Softmax and its variants (``_safe_softmax``, attention's masked-row-safe one)."""
    x = args[0]
    rec.emit(SOFTMAXES[func.overloadpacket], [(x, shape(x))], [(out, shape(out))],
             attrs=make_attrs(dim=int(args[1]) % max(x.dim(), 1)))


# -- attention and recurrent layers: counted whole, not by the kernels that run them ------------
@handles(aten.scaled_dot_product_attention, aten._scaled_dot_product_attention_math,
         aten._scaled_dot_product_flash_attention, aten._scaled_dot_product_flash_attention_for_cpu,
         aten._scaled_dot_product_efficient_attention, aten._scaled_dot_product_cudnn_attention)
def _sdpa(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    a = bind(func, args, kwargs)
    q, k, v = a["query"], a["key"], a["value"]
    mask = a.get("attn_mask", a.get("attn_bias"))
    operands = [q, k, v] + ([mask] if isinstance(mask, torch.Tensor) else [])
    acts, weights, buffers = rec.split_operands(operands)
    y = first(out)
    rec.emit("attention", acts, [(y, shape(y))], weights, buffers,
             attrs=make_attrs(causal=bool(a.get("is_causal") or False)))


def _fast_sdpa(args: tuple, kwargs: dict) -> torch.Tensor:
    q = args[0] if args else kwargs["query"]
    v = args[2] if len(args) > 2 else kwargs["value"]
    return torch.empty((*q.shape[:-1], v.shape[-1]), dtype=q.dtype, device=q.device)


#: aten recurrent op -> its op kind
RECURRENT: dict[Any, str] = {aten.lstm: "lstm", aten.gru: "gru", aten.rnn_tanh: "rnn_tanh", aten.rnn_relu: "rnn_relu"}


def _padded_rnn(packet: Any, args: tuple, kwargs: dict) -> tuple[dict[str, Any], list[torch.Tensor]] | None:
    """The arguments of the padded-sequence overload (``.input``) and its hidden states as a list;
    None for the packed-sequence one (``.data``, whose 4th argument is the params, not a bool)."""
    if kwargs or len(args) != 9 or not isinstance(args[3], bool):
        return None
    a = bind(packet.input, args, kwargs)
    return a, list(a["hx"]) if isinstance(a["hx"], (list, tuple)) else [a["hx"]]


def _fast_rnn(packet: Any) -> Callable[[tuple, dict], Any]:
    """Shapes of ``(output, h_n[, c_n])`` without running the timesteps one by one on meta."""
    def fast(args: tuple, kwargs: dict) -> Any:
        padded = _padded_rnn(packet, args, kwargs)
        if padded is None:
            return None
        a, states = padded
        x, dirs = a["input"], 2 if a["bidirectional"] else 1
        # (T, N, I), batch-first (N, T, I) or unbatched (T, I): only the feature dim changes
        y = torch.empty((*x.shape[:-1], dirs * states[0].shape[-1]), dtype=x.dtype, device=x.device)
        return (y, *(torch.empty_like(h) for h in states))

    return fast


@handles(*RECURRENT)
def _rnn(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """A whole ``nn.LSTM``/``GRU``/``RNN`` stack over a padded sequence, as one op: its parameters
    once, its MACs from its weight matrices (a packed sequence is traced step by step instead)."""
    padded = _padded_rnn(func.overloadpacket, args, kwargs)
    if padded is None:
        rec.unknown(func, args, kwargs, out)
        return
    a, states = padded
    x, h0 = a["input"], states[0]
    kind = RECURRENT[func.overloadpacket]
    acts, weights, buffers = rec.split_operands(list(a["params"]))
    if x.dim() == 2:
        steps, batch = x.shape[0], 1
    else:
        steps, batch = (x.shape[1], x.shape[0]) if a["batch_first"] else (x.shape[0], x.shape[1])
    dirs = 2 if a["bidirectional"] else 1
    gates = {"lstm": 4, "gru": 3}.get(kind, 1)
    # the hidden size from the first input-to-hidden matrix (gates * H rows); h0 is the projection's
    matrices = [w for w in weights if len(w) == 2]
    hidden = matrices[0][0] // gates if matrices else h0.shape[-1]
    outs = [t for t in out if isinstance(t, torch.Tensor)]
    rec.emit(kind, [(x, shape(x)), *acts], [(t, shape(t)) for t in outs], weights, buffers,
             attrs=make_attrs(steps=int(steps), batch=int(batch), hidden=int(hidden), layers=int(a["num_layers"]),
                              directions=dirs))


UPSAMPLES: dict[Any, str] = {
    aten.upsample_nearest1d: "nearest", aten.upsample_nearest2d: "nearest", aten.upsample_nearest3d: "nearest",
    aten._upsample_nearest_exact1d: "nearest_exact", aten._upsample_nearest_exact2d: "nearest_exact",
    aten._upsample_nearest_exact3d: "nearest_exact", aten.upsample_linear1d: "linear",
    aten.upsample_bilinear2d: "bilinear", aten._upsample_bilinear2d_aa: "bilinear",
    aten.upsample_trilinear3d: "trilinear", aten.upsample_bicubic2d: "bicubic", aten._upsample_bicubic2d_aa: "bicubic",
}


@handles(*UPSAMPLES)
def _upsample(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    rec.emit("upsample", [(x, shape(x))], [(out, shape(out))],
             attrs=make_attrs(mode=UPSAMPLES[func.overloadpacket]))


# -- data movement --------------------------------------------------------------------------
@handles(aten.cat, aten.stack)
def _cat(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    a = bind(func, args, kwargs)
    acts, weights, buffers = rec.split_operands(list(a["tensors"]))
    rec.emit("concat", acts, [(out, shape(out))], weights, buffers,
             attrs=make_attrs(dim=int(a["dim"]) % max(out.dim(), 1)))


@handles(aten.index, aten.index_select, aten.gather, aten.take_along_dim)
def _gather(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """Rows by index (``table[idx]``, Swin's relative-position bias): it reads what it writes."""
    x = args[0]
    o = rec.origin(x)
    read = (out.numel(),)  # only the rows gathered are read
    if o is None:
        rec.emit("gather", [(x, read)], [(out, shape(out))])
        return
    rec.weight_shape(x)  # a parameter or buffer table: charged whole
    rec.emit("gather", [], [(out, shape(out))], [read] if o[0] == WEIGHT else [], [read] if o[0] != WEIGHT else [])


@handles(aten.embedding)
def _embedding(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    w, idx = args[0], args[1]
    rec.weight_shape(w)  # the table is charged whole; the rows looked up are what is read
    rec.emit("embedding", [(idx, shape(idx))], [(out, shape(out))], [tuple(shape(out))])


@handles(aten.constant_pad_nd, aten.reflection_pad1d, aten.reflection_pad2d, aten.reflection_pad3d,
         aten.replication_pad1d, aten.replication_pad2d, aten.replication_pad3d)
def _pad(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    acts, weights, buffers = rec.split_operands([x])
    rec.emit("pad", acts, [(out, shape(out))], weights, buffers)


@handles(aten.fill_, aten.zero_)
def _fill(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """An initializer on a tensor already in the data flow (the recorder ignores it otherwise):
    it writes the tensor and reads nothing."""
    x = args[0]
    rec.weight_shape(x)  # a copy of a parameter (Swin V2's ``qkv.bias.clone()``) is charged, not read
    rec.emit("fill", [], [(x, shape(x))])


@handles(aten.roll, aten.repeat, aten.flip, aten.tile)
def _roll(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    acts, weights, buffers = rec.split_operands([x])
    rec.emit("copy", acts, [(out, shape(out))], weights, buffers)


@handles(aten.split, aten.split_with_sizes, aten.chunk, aten.unsafe_split, aten.unsafe_split_with_sizes,
         aten.unsafe_chunk)
def _split(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """``torch.split``/``chunk``: one view op whose parts share the input's storage."""
    a = bind(func, args, kwargs)
    x = a["self"]
    d = int(a.get("dim") or 0) % max(x.dim(), 1)
    rec.emit("split", [(x, shape(x))], [(t, shape(t)) for t in out],
             attrs=make_attrs(dim=d, sizes=tuple(int(t.shape[d]) for t in out)))


@handles(aten.clone, aten._to_copy)
def _clone(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    if rec.derive(out, x):
        return
    rec.emit("copy", [(x, shape(x))], [(out, shape(out))])


@handles(aten.contiguous, aten.reshape, aten.flatten, aten._reshape_copy, aten.to)
def _maybe_copy(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """A view when possible, else a materializing copy of the input as laid out (``clone`` then
    ``view``, which is what these decompose into)."""
    x = args[0]
    if (isinstance(out, torch.Tensor) and storage_key(out) == storage_key(x)) or rec.derive(out, x):
        return
    rec.emit("copy", [(x, shape(x))], [(out, shape(x))])


@handles(aten.copy_)
def _copy_into(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    """``dst.copy_(src)`` (``x[:, :c] = y``): writes into the destination's storage."""
    dst, src = args[0], args[1]
    rec.emit("copy", [(src, shape(src))], [(dst, shape(dst))])


# registered here, after the functions they name are defined
FAST_KERNELS[aten.scaled_dot_product_attention] = _fast_sdpa
for _packet in RECURRENT:
    FAST_KERNELS[_packet] = _fast_rnn(_packet)
