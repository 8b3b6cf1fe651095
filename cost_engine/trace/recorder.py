"""The dispatch mode that records canonical ops while a module runs on meta tensors.

It keeps three pieces of state an aten call alone does not carry:

* **storage identity** — every tensor is named by its storage, so views (``view``, ``permute``,
  ``split`` parts ...) share the id of their base and liveness/fusion in ``summarize`` see the
  same data flow the closed-form expansion describes;
* **origin** — a storage that belongs to a parameter or a buffer stays one through any view
  (``t()``, ``expand``, ``view``), and is recorded with the *original* parameter shape;
* **the module stack** — forward pre/post hooks on every submodule give the innermost module
  that issued each op (its dotted path and class name).

What each aten op becomes is decided in :mod:`cost_engine.trace.canonical`; this module only
offers the bookkeeping those handlers use and the generic rules for everything else (pure views
record nothing; unhandled composite ops are decomposed; anything left is an ``aten.<name>`` op).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from math import prod
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from cost_engine.formulas import FORMULAS, UnknownOpError
from cost_engine.ops import Attrs, Op, Shape

Handler = Callable[["Recorder", Any, tuple, dict, Any], None]

WEIGHT = "weight"
BUFFER = "buffer"
_COMPOSITE = torch._C.DispatchKey.CompositeImplicitAutograd


def storage_key(t: torch.Tensor) -> int:
    """Identity of the storage behind ``t`` (views share it); tensors are kept alive while tracing,
    so a key is never reused for another storage."""
    return t.untyped_storage()._cdata


class Recorder(TorchDispatchMode):
    """Records :class:`Op` records for the aten calls of one forward (see the module docstring)."""

    def __init__(self, handlers: dict[Any, Handler], ignored: frozenset, decomposed: frozenset,
                 fast: dict[Any, Callable[[tuple, dict], torch.Tensor | None]], strict: bool = False):
        super().__init__()
        self.handlers = handlers
        self.fast = fast
        self.ignored = ignored
        self.decomposed = decomposed
        self.strict = strict
        self.ops: list[Op] = []
        self._ids: dict[int, int] = {}
        #: storage -> (WEIGHT or BUFFER, the original tensor's shape, the original's storage)
        self._origin: dict[int, tuple[str, Shape, int]] = {}
        #: original storage -> its elements; charged once, at the first op that reads any of it
        self._size: dict[int, int] = {}
        self._charged: set[int] = set()
        self._pending: list[int] = []  # originals read by the op being built (see :meth:`charge`)
        self._keep: list[torch.Tensor] = []
        self._stack: list[tuple[str, str]] = []
        self._composite: dict[Any, bool] = {}
        #: module class name -> the classes of that name that ran (the views check how tools see them)
        self.classes: dict[str, set[type]] = {}
        #: composite aten ops recorded through their decomposition (``aten.einsum`` -> calls)
        self.decomposed_calls: dict[str, int] = {}
        self.shared_params = False

    # -- setup ---------------------------------------------------------------------------
    def mark_params(self, module: nn.Module) -> None:
        """Parameters and buffers, each once (``parameters()`` already folds tied ones); notes
        whether a parameter is registered in two modules (tied weights), which per-module tools
        count twice."""
        owners: dict[int, int] = {}
        for m in module.modules():
            for p in m._parameters.values():
                if p is not None:
                    owners[id(p)] = owners.get(id(p), 0) + 1
        self.shared_params = any(n > 1 for n in owners.values())
        for p in module.parameters():
            key = storage_key(p)
            self._origin[key] = (WEIGHT, tuple(p.shape), key)
            self._size[key] = self._size.get(key, 0) + p.numel()
        for b in module.buffers():
            key = storage_key(b)
            if key not in self._origin:
                self._origin[key] = (BUFFER, tuple(b.shape), key)
                self._size[key] = b.numel()

    def unused_params(self) -> int:
        """Parameter elements the forward never read (an eval-mode aux head)."""
        return sum(size for key, size in self._size.items()
                   if key not in self._charged and self._origin[key][0] == WEIGHT)

    def mark_input(self, x: torch.Tensor) -> None:
        self._keep.append(x)
        self.tid(x)

    @contextmanager
    def module_hooks(self, root: nn.Module) -> Iterator[None]:
        """Track the innermost running module by forward pre/post hooks on every submodule."""
        handles = []
        for path, mod in root.named_modules():
            entry = (path, type(mod).__name__)
            self.classes.setdefault(entry[1], set()).add(type(mod))
            handles.append(mod.register_forward_pre_hook(self._enter(entry)))
            handles.append(mod.register_forward_hook(self._leave, always_call=True))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _enter(self, entry: tuple[str, str]) -> Callable[..., None]:
        def hook(_module: nn.Module, _args: Any) -> None:
            self._stack.append(entry)

        return hook

    def _leave(self, _module: nn.Module, _args: Any, _out: Any) -> None:
        self._stack.pop()

    # -- bookkeeping used by the handlers -------------------------------------------------
    def tid(self, t: torch.Tensor) -> int:
        """The id of ``t``'s storage, numbered in order of first appearance (the input is 1)."""
        key = storage_key(t)
        i = self._ids.get(key)
        if i is None:
            i = self._ids[key] = len(self._ids) + 1
        return i

    def alias(self, t: torch.Tensor, like: int) -> None:
        """Give ``t``'s storage the existing id ``like`` (an op folded into the one before it)."""
        self._ids[storage_key(t)] = like

    def origin(self, t: torch.Tensor) -> tuple[str, Shape, int] | None:
        """(WEIGHT or BUFFER, original shape, original storage) for parameter/buffer-derived
        tensors, else None."""
        return self._origin.get(storage_key(t))

    def weight_shape(self, t: torch.Tensor, used: Shape | None = None) -> Shape:
        """A learnable operand's shape for the op's formula, and a note that the op reads it.

        A view of the whole parameter (``w.t()``, ``w.expand``) has the parameter's own shape; a
        slice of it (``in_proj_weight[:E]``, a dynamic conv's ``weight[:co, :ci]``) has the
        slice's (``used``, when the handler knows it in canonical order, else the slice's own):
        the formula counts what is computed, while :meth:`charge` charges the whole parameter,
        once."""
        o = self.origin(t)
        if o is None:
            return tuple(t.shape)
        self._pending.append(o[2])
        whole = o[1]
        if t.numel() >= prod(whole):  # all of it, maybe broadcast (a class token expanded to the batch)
            return whole
        return tuple(used) if used is not None else tuple(t.shape)

    def charge(self, weights: Sequence[Shape], buffers: Sequence[Shape]) -> Attrs:
        """Charge the originals the op being emitted reads: each parameter or buffer counts once,
        at the first op that reads any part of it. Returns the attrs to add when that differs
        from what the op's weight and buffer shapes add up to (a reuse, a slice)."""
        params = bufs = 0
        for key in self._pending:
            if key in self._charged:
                continue
            self._charged.add(key)
            if self._origin[key][0] == WEIGHT:
                params += self._size[key]
            else:
                bufs += self._size[key]
        self._pending.clear()
        extra: list[tuple[str, int]] = []
        if params != sum(prod(w) for w in weights):
            extra.append(("params", params))
        if bufs != sum(prod(b) for b in buffers):
            extra.append(("buffers", bufs))
        return tuple(extra)

    def derive(self, out: torch.Tensor, source: torch.Tensor) -> bool:
        """A copy or cast of a parameter (``weight.to(dtype)``) is still that parameter: mark it so
        and record no op. False for activations."""
        o = self.origin(source)
        if o is None:
            return False
        self._origin[storage_key(out)] = o  # still the original's storage for charging
        return True

    def seen(self, t: torch.Tensor) -> bool:
        return storage_key(t) in self._ids or storage_key(t) in self._origin

    @property
    def module(self) -> tuple[str, str]:
        return self._stack[-1] if self._stack else ("", "")

    def emit(self, kind: str, inputs: Sequence[tuple[torch.Tensor, Shape]],
             outputs: Sequence[tuple[torch.Tensor, Shape]], weights: Sequence[Shape] = (),
             buffers: Sequence[Shape] = (), attrs: Attrs = ()) -> Op:
        """Append one op; inputs/outputs are (tensor, canonical shape) pairs, ids from storage."""
        path, module_type = self.module
        if self.strict and kind not in FORMULAS:
            where = f"module {path!r} ({module_type})" if module_type else "the top level"
            raise UnknownOpError(f"{kind} in {where} has no cost formula")
        for t, _ in inputs:  # a parameter read as data (weight standardization, ``logit_scale.exp()``)
            o = self._origin.get(storage_key(t))
            if o is not None:
                self._pending.append(o[2])
        charged = self.charge(weights, buffers)
        if charged:
            attrs = tuple(sorted((*attrs, *charged)))
        op = Op(
            kind=kind,
            inputs=tuple(tuple(s) for _, s in inputs),
            outputs=tuple(tuple(s) for _, s in outputs),
            weights=tuple(tuple(w) for w in weights),
            buffers=tuple(tuple(b) for b in buffers),
            attrs=attrs,
            module=path,
            module_type=module_type,
            input_ids=tuple(self.tid(t) for t, _ in inputs),
            output_ids=tuple(self.tid(t) for t, _ in outputs),
        )
        self.ops.append(op)
        return op

    def add_weights_to_last(self, weights: Sequence[Shape]) -> None:
        """Fold weights just looked up (a bias ``add``) into the last op, charged as there."""
        last = self.ops[-1]
        before = dict(last.attrs)
        charged = dict(self.charge(weights, ()))
        params = (before.get("params", sum(prod(w) for w in last.weights))
                  + charged.get("params", sum(prod(w) for w in weights)))
        merged = (*last.weights, *weights)
        attrs = {k: v for k, v in before.items() if k != "params"}
        if params != sum(prod(w) for w in merged):
            attrs["params"] = params
        self.ops[-1] = dataclasses.replace(last, weights=merged, attrs=tuple(sorted(attrs.items())))

    def split_operands(self, tensors: Sequence[torch.Tensor]) -> tuple[list[tuple[torch.Tensor, Shape]],
                                                                       list[Shape], list[Shape]]:
        """Activations (with their shapes), weights and buffers (original shapes), in order."""
        acts: list[tuple[torch.Tensor, Shape]] = []
        weights: list[Shape] = []
        buffers: list[Shape] = []
        for t in tensors:
            o = self.origin(t)
            if o is None:
                acts.append((t, tuple(t.shape)))
            elif o[0] == WEIGHT:
                weights.append(self.weight_shape(t))
            else:
                buffers.append(self.weight_shape(t))
        return acts, weights, buffers

    def unknown(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        """An op without a canonical form: listed as ``aten.<name>`` (never silently zero)."""
        ins = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        acts, weights, buffers = self.split_operands(ins)
        outs = [(t, tuple(t.shape)) for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        self.emit(f"aten.{func.overloadpacket.__name__}", acts, outs, weights, buffers)

    def decompose(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """Run a composite op's decomposition with this mode active, so its parts are recorded."""
        with self:
            return func.decompose(*args, **kwargs)

    def is_composite(self, func: Any) -> bool:
        c = self._composite.get(func)
        if c is None:
            c = self._composite[func] = func.has_kernel_for_dispatch_key(_COMPOSITE)
        return c

    # -- the dispatch hook ----------------------------------------------------------------
    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        packet = func.overloadpacket
        if packet in self.decomposed:
            return self.decompose(func, args, kwargs)
        if packet in self.ignored and not self._writes_seen(func, args):
            return self._keep_alive(func(*args, **kwargs))
        fast = self.fast.get(packet)
        out = fast(args, kwargs) if fast is not None else None
        out = self._keep_alive(func(*args, **kwargs) if out is None else out)
        handler = self.handlers.get(packet)
        if handler is not None:
            handler(self, func, args, kwargs, out)
            return out
        if not func._schema.is_mutable and _aliases_only(args, kwargs, out):
            return out  # a pure view (or no tensor result): nothing moves, ids follow storages
        if self.is_composite(func):
            name = f"aten.{packet.__name__}"
            self.decomposed_calls[name] = self.decomposed_calls.get(name, 0) + 1
            return self.decompose(func, args, kwargs)
        self.unknown(func, args, kwargs, out)
        return out

    def _keep_alive(self, out: Any) -> Any:
        if isinstance(out, torch.Tensor):
            self._keep.append(out)
        else:
            self._keep.extend(t for t in tree_leaves(out) if isinstance(t, torch.Tensor))
        return out

    def _writes_seen(self, func: Any, args: tuple) -> bool:
        """An initializer (``fill_``/``zero_``) on a tensor already in the data flow is real work."""
        return func._schema.is_mutable and bool(args) and isinstance(args[0], torch.Tensor) and self.seen(args[0])

    # -- result ---------------------------------------------------------------------------
    def renumbered(self) -> list[Op]:
        """Ops with ids renumbered densely in order of first appearance (the input stays 1)."""
        mapping = {1: 1}
        ops = []
        for op in self.ops:
            for i in op.input_ids + op.output_ids:
                if i not in mapping:
                    mapping[i] = len(mapping) + 1
            ops.append(Op(op.kind, op.inputs, op.outputs, op.weights, op.buffers, op.attrs, op.module,
                          op.module_type, tuple(mapping[i] for i in op.input_ids),
                          tuple(mapping[i] for i in op.output_ids)))
        return ops


def _aliases_only(args: tuple, kwargs: dict, out: Any) -> bool:
    """Every tensor output shares the storage of an operand: a view, an op that returned its input,
    or a query without tensor results."""
    outs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
    operands = {storage_key(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
    return all(storage_key(t) in operands for t in outs)
