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

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch._prims_common import suggest_memory_format

from cost_engine.ops import Shape, make_attrs
from cost_engine.trace.recorder import Handler, Recorder, storage_key

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


#: Result-only stand-ins for kernels whose meta version is slow (a meta ``batch_norm`` is a
#: Python decomposition costing milliseconds) or lays its result out unlike eager (conv): they
#: produce the shape, dtype and strides eager CPU does, which a test checks against real CPU
#: kernels. ``None`` means "run the real meta kernel".
FAST_KERNELS: dict[Any, Callable[[tuple, dict], torch.Tensor | None]] = {
    aten.batch_norm: _fast_batch_norm,
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


def param_shape(rec: Recorder, t: torch.Tensor) -> Shape:
    """A learnable operand's shape: the original parameter's shape through any view of it."""
    o = rec.origin(t)
    return o[1] if o is not None else shape(t)


def _tensors(values: Sequence[Any]) -> list[torch.Tensor]:
    return [v for v in values if isinstance(v, torch.Tensor) and not _wrapped_number(v)]


def _wrapped_number(t: torch.Tensor) -> bool:
    return t.dim() == 0 and t.device.type == "cpu"


# -- conv, linear, matmul -----------------------------------------------------------------
@handles(aten.conv2d, aten.convolution, aten._convolution)
def _conv(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    a = bind(func, args, kwargs)
    x, w, b = a["input"], a["weight"], a["bias"]
    if a.get("transposed") or w.dim() != 4:
        rec.unknown(func, args, kwargs, out)
        return
    stride, dilation = pair(a["stride"]), pair(a["dilation"])
    if isinstance(a["padding"], str):  # conv2d.padding: "valid" or "same"
        same = a["padding"] == "same"
        padding = tuple(d * (k - 1) // 2 if same else 0 for d, k in zip(dilation, w.shape[2:], strict=True))
    else:
        padding = pair(a["padding"])
    weights = [param_shape(rec, w)] + ([param_shape(rec, b)] if b is not None else [])
    attrs = make_attrs(stride=stride, padding=padding, dilation=dilation, groups=int(a["groups"]))
    rec.emit("conv2d", [(x, shape(x))], [(out, shape(out))], weights, attrs=attrs)


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
    weights = [param_shape(rec, w)] + ([param_shape(rec, b)] if b is not None else [])
    rec.emit("linear", [(x, (rows, in_features))], [(out, (rows, out_features))], weights)


def _product(rec: Recorder, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, bias: torch.Tensor | None) -> None:
    """A matrix product: ``linear`` when one side is a 2-D parameter, else a 3-D batched ``matmul``."""
    oa, ob = rec.origin(a), rec.origin(b)
    if ob is not None and oa is None and len(ob[1]) == 2:  # x[..., k] @ W^T[k, n] (W^T maybe expanded)
        _emit_linear(rec, a, a.shape[-1], b, bias, out)
        return
    if oa is not None and ob is None and len(oa[1]) == 2 and b.dim() >= 2:  # W[m, k] @ x[..., k, n]
        m, k = a.shape[-2:]
        rows = out.numel() // m if m else 0
        weights = [oa[1]] + ([param_shape(rec, bias)] if bias is not None else [])
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
    a = bind(func, args, kwargs)
    _norm(rec, "batch_norm", a["input"], [a["weight"], a["bias"]],
          [a.get("running_mean"), a.get("running_var")], first(out))


@handles(aten.layer_norm, aten.native_layer_norm)
def _layer_norm(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    a = bind(func, args, kwargs)
    _norm(rec, "layer_norm", a["input"], [a["weight"], a["bias"]], [], first(out))


def _norm(rec: Recorder, kind: str, x: torch.Tensor, affine: list[Any], stats: list[Any],
          y: torch.Tensor) -> None:
    acts, weights, buffers = rec.split_operands(_tensors(affine))
    stat_acts, stat_weights, stat_buffers = rec.split_operands(_tensors(stats))
    rec.emit(kind, [(x, shape(x)), *acts, *stat_acts], [(y, shape(y))], weights + stat_weights,
             buffers + stat_buffers)


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
    rec.ops[-1] = dataclasses.replace(last, weights=(*last.weights, weights[0]))
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


@handles(aten.softmax, aten._softmax)
def _softmax(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    x = args[0]
    rec.emit("softmax", [(x, shape(x))], [(out, shape(out))], attrs=make_attrs(dim=int(args[1]) % max(x.dim(), 1)))


# -- data movement --------------------------------------------------------------------------
@handles(aten.cat)
def _cat(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    a = bind(func, args, kwargs)
    acts, weights, buffers = rec.split_operands(list(a["tensors"]))
    rec.emit("concat", acts, [(out, shape(out))], weights, buffers,
             attrs=make_attrs(dim=int(a["dim"]) % max(out.dim(), 1)))


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
