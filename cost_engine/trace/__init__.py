"""The aten-level tracer: any ``nn.Module`` to the canonical op list, on meta tensors.

It runs the module once under a ``TorchDispatchMode`` on a meta-device copy (no real memory,
no real compute) and turns each aten call into the same :class:`~cost_engine.ops.Op` records
that closed-form expansion produces, so the same formulas count both. That makes it two things:
the check that every block's expansion is exact (the tests compare op lists), and the way an
arbitrary user module gets counted (:func:`analyze_module`). Ops without a canonical form are
kept as ``aten.<name>`` records, listed in the report's ``unknown_ops``; ``strict=True`` raises
:class:`~cost_engine.formulas.UnknownOpError` instead.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cost_engine.formulas import UnknownOpError
from cost_engine.ops import Op, Shape
from cost_engine.report import DTYPE_BYTES, CostReport
from cost_engine.spec.base import FieldError, SpecError
from cost_engine.summary import summarize
from cost_engine.trace.canonical import DECOMPOSED, FAST_KERNELS, HANDLERS, IGNORED
from cost_engine.trace.recorder import Recorder
from cost_engine.views import view_caveats

__all__ = ["UnknownOpError", "analyze_module", "trace_ops"]

TORCH_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64,
}
#: no tensor dimension may exceed this (shapes are only ever metadata here, but stay sane)
MAX_DIM = 1 << 20


def trace_ops(module: nn.Module, input_shape: tuple[int, ...] | None = None, *, inputs: Sequence[Any] | None = None,
              dtype: str = "float32", strict: bool = False) -> list[Op]:
    """The canonical op list of one inference forward of ``module`` on an input of ``input_shape``
    (or on ``inputs``, see :func:`analyze_module`).

    ``module`` is never modified or run on real data: a structural copy with meta parameters is.
    Tensor ids name storages (views share their base's), numbered by first appearance, the
    (first) input being 1.
    """
    return _trace(module, input_shape, inputs, dtype, strict).ops


def analyze_module(module: nn.Module, input_shape: tuple[int, ...] | None = None, *,
                   inputs: Sequence[Any] | None = None, dtype: str = "float32", strict: bool = False) -> CostReport:
    """The cost report of an arbitrary module, from its trace and the same formulas as ``analyze``.

    ``input_shape``: one floating input of that shape. ``inputs``: the forward's positional
    arguments instead, for a module that takes several or integer ones (``nn.Transformer``'s
    ``src, tgt``, token ids): each a tensor (only its shape and dtype are used; floating ones
    take ``dtype``), a shape (a floating tensor), or a plain value passed as is.

    ``params`` counts each parameter the forward read once (tied and shared ones once, a sliced
    one whole); the module's parameters it never read are ``unused_params``. ``complete`` is False
    when an op without a formula may carry MACs (``unknown_ops`` lists them); ``strict`` raises
    :class:`UnknownOpError` for any op without a formula instead.
    """
    t = _trace(module, input_shape, inputs, dtype, strict)
    shape = t.input_shape
    summary = summarize(t.ops)
    caveats = view_caveats(t.ops, t.classes, t.decomposed, summary.unknown, not summary.lower_bound,
                           t.unused_params, t.shared_params)
    return CostReport(type(module).__name__, shape[0] if shape else 1, shape, t.output_shape, dtype, summary,
                      unused_params=t.unused_params, view_caveats=caveats)


@dataclass
class _Traced:
    ops: list[Op]
    input_shape: Shape
    output_shape: Shape
    unused_params: int
    classes: dict[str, set[type]]
    decomposed: dict[str, int]
    shared_params: bool


def _trace(module: nn.Module, input_shape: Any, inputs: Sequence[Any] | None, dtype: str, strict: bool) -> _Traced:
    specs = _check(module, input_shape, inputs, dtype)
    torch_dtype = TORCH_DTYPES[dtype]
    rec = Recorder(HANDLERS, IGNORED, DECOMPOSED, FAST_KERNELS, strict)
    with meta_eval(module, torch_dtype) as model, torch.inference_mode():
        rec.mark_params(model)
        args = [_meta_input(v, torch_dtype) for v in specs]
        for a in args:
            if isinstance(a, torch.Tensor):
                rec.mark_input(a)
        try:
            with rec.module_hooks(model), torch.device("meta"), rec:  # tensors made in forward: meta too
                out = model(*args)
        except RuntimeError as exc:  # torch's shape/dtype complaints: the input does not fit
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            field = "input_shape" if inputs is None else "inputs"
            got = list(specs[0]) if inputs is None else [_describe(v) for v in specs]
            raise SpecError([FieldError(field, f"{type(module).__name__} cannot run on {got}: {reason}")]) from exc
    first = next((a for a in args if isinstance(a, torch.Tensor)), None)
    return _Traced(rec.renumbered(), tuple(first.shape) if first is not None else (), _output_shape(out),
                   rec.unused_params(), rec.classes, rec.decomposed_calls, rec.shared_params)


def _meta_input(v: Any, dtype: torch.dtype) -> Any:
    if isinstance(v, torch.Tensor):
        return torch.empty(tuple(v.shape), device="meta", dtype=dtype if v.is_floating_point() else v.dtype)
    if isinstance(v, tuple) and all(isinstance(d, int) for d in v):
        return torch.empty(v, device="meta", dtype=dtype)
    return v


def _describe(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return f"tensor{list(v.shape)} {str(v.dtype).removeprefix('torch.')}"
    return list(v) if isinstance(v, tuple) else v


@contextmanager
def meta_eval(module: nn.Module, dtype: torch.dtype) -> Iterator[nn.Module]:
    """``module`` in eval mode with meta parameters and buffers of ``dtype``.

    A module already on meta in that dtype is used as is (its training flags restored after);
    any other is deep-copied with meta stand-ins for its tensors, so its data is never copied
    and the caller's module never changes.
    """
    tensors = [*module.parameters(), *module.buffers()]
    if all(t.is_meta and (t.dtype == dtype or not t.is_floating_point()) for t in tensors):
        modes = [(m, m.training) for m in module.modules()]
        try:
            yield module.eval()
        finally:
            for m, training in modes:
                m.training = training
        return
    yield meta_copy(module, dtype)


def meta_copy(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A deep copy of ``module`` in eval mode whose parameters and buffers are meta tensors of
    ``dtype`` (floating ones only); the original's data is never copied."""
    memo: dict[int, Any] = {}
    for p in module.parameters():
        meta = torch.empty_like(p, device="meta", dtype=dtype if p.is_floating_point() else p.dtype)
        memo[id(p)] = nn.Parameter(meta, requires_grad=p.requires_grad)
    for b in module.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta", dtype=dtype if b.is_floating_point() else b.dtype)
    for m in module.modules():  # tensors kept as plain attributes: caches (LeViT's attention biases) ...
        for key, value in vars(m).items():
            if key not in ("_parameters", "_buffers", "_modules"):
                _seed(value, memo, dtype)
    clone = copy.deepcopy(module, memo)
    return clone.eval()


def _seed(value: Any, memo: dict[int, Any], dtype: torch.dtype, depth: int = 0) -> None:
    """Meta stand-ins for the tensors in ``value`` (through dicts, lists and tuples): a cache made
    by a forward with autograd on is no leaf, and torch refuses to deep-copy it."""
    if isinstance(value, torch.Tensor):
        if id(value) not in memo:
            memo[id(value)] = torch.empty_like(value, device="meta",
                                               dtype=dtype if value.is_floating_point() else value.dtype)
    elif depth < 4 and isinstance(value, dict):
        for v in value.values():
            _seed(v, memo, dtype, depth + 1)
    elif depth < 4 and isinstance(value, (list, tuple)):
        for v in value:
            _seed(v, memo, dtype, depth + 1)


def _check(module: Any, input_shape: Any, inputs: Any, dtype: str) -> list[Any]:
    """The forward's arguments as given (shapes as tuples), or every bad field at once."""
    errors = []
    if not isinstance(module, nn.Module):
        errors.append(FieldError("module", f"must be a torch.nn.Module, got {type(module).__name__}"))
    specs: list[Any] = []
    if (input_shape is None) == (inputs is None):
        errors.append(FieldError("input_shape", "give input_shape or inputs, exactly one"))
    elif inputs is None:
        if not _is_shape(input_shape):
            errors.append(FieldError("input_shape", f"must be a non-empty sequence of integers in [1, {MAX_DIM}], "
                                                    f"got {input_shape!r}"))
        else:
            specs = [tuple(input_shape)]
    elif not isinstance(inputs, (tuple, list)) or not inputs:
        errors.append(FieldError("inputs", f"must be a non-empty sequence of the forward's arguments, got {inputs!r}"))
    else:
        for i, v in enumerate(inputs):
            if isinstance(v, torch.Tensor):
                if any(d > MAX_DIM for d in v.shape):
                    errors.append(FieldError(f"inputs[{i}]", f"dimensions must be at most {MAX_DIM}"))
                specs.append(v)
            elif isinstance(v, (tuple, list)) and v and all(isinstance(d, int) for d in v):
                if not _is_shape(v):
                    errors.append(FieldError(f"inputs[{i}]",
                                             f"a shape must hold integers in [1, {MAX_DIM}], got {v!r}"))
                specs.append(tuple(v))
            else:
                specs.append(v)
    if dtype not in DTYPE_BYTES or dtype not in TORCH_DTYPES:
        errors.append(FieldError("dtype", f"must be one of {', '.join(TORCH_DTYPES)}; got {dtype!r}"))
    if errors:
        raise SpecError(errors)
    return specs


def _is_shape(v: Any) -> bool:
    return (isinstance(v, (tuple, list)) and bool(v)
            and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_DIM for d in v))


def _output_shape(out: Any) -> Shape:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    leaves = torch.utils._pytree.tree_leaves(out)
    tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
    return tuple(tensors[0].shape) if tensors else ()
