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
from collections.abc import Iterator
from contextlib import contextmanager
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

__all__ = ["UnknownOpError", "analyze_module", "trace_ops"]

TORCH_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64,
}
#: no tensor dimension may exceed this (shapes are only ever metadata here, but stay sane)
MAX_DIM = 1 << 20


def trace_ops(module: nn.Module, input_shape: tuple[int, ...], *, dtype: str = "float32",
              strict: bool = False) -> list[Op]:
    """The canonical op list of one inference forward of ``module`` on an input of ``input_shape``.

    ``module`` is never modified or run on real data: a structural copy with meta parameters is.
    Tensor ids name storages (views share their base's), numbered by first appearance, the
    input being 1.
    """
    return _trace(module, input_shape, dtype, strict)[0]


def analyze_module(module: nn.Module, input_shape: tuple[int, ...], *, dtype: str = "float32",
                   strict: bool = False) -> CostReport:
    """The cost report of an arbitrary module, from its trace and the same formulas as ``analyze``."""
    ops, out_shape = _trace(module, input_shape, dtype, strict)
    shape = tuple(input_shape)
    return CostReport(type(module).__name__, shape[0], shape, out_shape, dtype, summarize(ops))


def _trace(module: nn.Module, input_shape: Any, dtype: str, strict: bool) -> tuple[list[Op], Shape]:
    shape = _check(module, input_shape, dtype)
    torch_dtype = TORCH_DTYPES[dtype]
    rec = Recorder(HANDLERS, IGNORED, DECOMPOSED, FAST_KERNELS, strict)
    with meta_eval(module, torch_dtype) as model, torch.inference_mode():
        rec.mark_params(model)
        x = torch.empty(shape, device="meta", dtype=torch_dtype)
        rec.mark_input(x)
        try:
            with rec.module_hooks(model), torch.device("meta"), rec:  # tensors made in forward: meta too
                out = model(x)
        except RuntimeError as exc:  # torch's shape/dtype complaints: the input does not fit
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SpecError([FieldError("input_shape", f"{type(module).__name__} cannot run on "
                                                       f"{list(shape)}: {reason}")]) from exc
    return rec.renumbered(), _output_shape(out)


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
    clone = copy.deepcopy(module, memo)
    return clone.eval()


def _check(module: Any, input_shape: Any, dtype: str) -> Shape:
    errors = []
    if not isinstance(module, nn.Module):
        errors.append(FieldError("module", f"must be a torch.nn.Module, got {type(module).__name__}"))
    if (not isinstance(input_shape, (tuple, list)) or not input_shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_DIM for d in input_shape)):
        errors.append(FieldError("input_shape", f"must be a non-empty sequence of integers in [1, {MAX_DIM}], "
                                                f"got {input_shape!r}"))
    if dtype not in DTYPE_BYTES or dtype not in TORCH_DTYPES:
        errors.append(FieldError("dtype", f"must be one of {', '.join(TORCH_DTYPES)}; got {dtype!r}"))
    if errors:
        raise SpecError(errors)
    return tuple(input_shape)


def _output_shape(out: Any) -> Shape:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    leaves = torch.utils._pytree.tree_leaves(out)
    tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
    return tuple(tensors[0].shape) if tensors else ()
