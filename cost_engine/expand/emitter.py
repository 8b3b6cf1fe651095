"""Builds an op list by closed-form shape inference, mirroring what the built module runs.

Block expanders call these methods in the order their built module executes; each method
computes output shapes and appends one canonical :class:`Op`. Views (reshape, flatten,
transpose without a copy) append nothing but keep tensor identity, so liveness stays right.

A primitive given ``name`` is recorded as run by a leaf module of that attribute name (and the
``nn`` class the builders use for it); without ``name`` it is recorded as run functionally in the
current scope's ``forward``. Builders must follow the same structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from cost_engine.formulas import ACTIVATION_FLOPS
from cost_engine.ops import Attrs, Op, Shape, make_attrs

#: The ``nn`` class that runs each op kind when it is a leaf module.
LEAF_TYPES: dict[str, str] = {
    "conv2d": "Conv2d",
    "linear": "Linear",
    "batch_norm": "BatchNorm2d",
    "layer_norm": "LayerNorm",
    "relu": "ReLU",
    "relu6": "ReLU6",
    "silu": "SiLU",
    "gelu": "GELU",
    "sigmoid": "Sigmoid",
    "hardswish": "Hardswish",
    "hardsigmoid": "Hardsigmoid",
    "tanh": "Tanh",
    "max_pool2d": "MaxPool2d",
    "avg_pool2d": "AvgPool2d",
    "adaptive_avg_pool2d": "AdaptiveAvgPool2d",
    "softmax": "Softmax",
}


#: ops whose output keeps the memory order of their (full-size) input in eager PyTorch: a
#: channels-last map stays channels-last through conv, BN, activations, pools and elementwise ops
LAYOUT_PRESERVING: frozenset[str] = frozenset({
    "conv2d", "batch_norm", *ACTIVATION_FLOPS, "add", "sub", "mul", "div", "max_pool2d", "avg_pool2d",
})
_BROADCASTING: frozenset[str] = frozenset({"add", "sub", "mul", "div"})


class T(NamedTuple):
    """A symbolic tensor: a storage id (shared by views), a shape, and whether its memory is in
    row-major order for that shape (a permuted view is not: flattening it copies)."""

    id: int
    shape: Shape
    contiguous: bool = True


class _Scope:
    """Pops the scope entered by :meth:`Emitter.scope` (a class, not ``@contextmanager``: this is
    entered for every submodule of every new block, and a generator context manager costs ~4x)."""

    __slots__ = ("_stack",)

    def __init__(self, stack: list[tuple[str, str, str]]):
        self._stack = stack

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self._stack.pop()


class Emitter:
    def __init__(self) -> None:
        self.ops: list[Op] = []
        self._next_id = 0
        # (attribute name, class name, full dotted path) per entered submodule
        self._scope: list[tuple[str, str, str]] = []

    # -- tensors and scopes -------------------------------------------------------------
    def tensor(self, shape: Sequence[int]) -> T:
        self._next_id += 1
        return T(self._next_id, tuple(shape))

    def view(self, x: T, shape: Sequence[int], contiguous: bool | None = None) -> T:
        """Same storage, new shape; ``contiguous=False`` marks a permuted view."""
        return T(x.id, tuple(shape), x.contiguous if contiguous is None else contiguous)

    def flatten(self, x: T, start_dim: int = 1) -> T:
        """``torch.flatten``: a view when the memory order allows, else a copy (recorded)."""
        shape = (*x.shape[:start_dim], _prod(x.shape[start_dim:]))
        non_unit = [d for d in x.shape[start_dim:] if d != 1]
        if x.contiguous or len(non_unit) <= 1:
            return self.view(x, shape, contiguous=True)
        return self.view(self.copy(x), shape, contiguous=True)  # torch copies the map, then views it

    def _push(self, name: str, module_type: str) -> None:
        parent = self._scope[-1][2] if self._scope else ""
        path = f"{parent}.{name}" if parent and name else (name or parent)
        self._scope.append((name, module_type, path))

    def scope(self, name: str | int, module_type: str) -> _Scope:
        """Enter a submodule (attribute ``name``, class ``module_type``): ``with em.scope(...):``."""
        self._push(str(name), module_type)
        return _Scope(self._scope)

    @property
    def module(self) -> str:
        return self._scope[-1][2] if self._scope else ""

    @property
    def module_type(self) -> str:
        return self._scope[-1][1] if self._scope else ""

    # -- the generic op ------------------------------------------------------------------
    def op(
        self,
        kind: str,
        inputs: Sequence[T],
        outputs: Sequence[Shape],
        weights: Sequence[Shape] = (),
        buffers: Sequence[Shape] = (),
        attrs: Attrs = (),
        inplace: bool = False,
        name: str | None = None,
        module_type: str | None = None,
    ) -> list[T]:
        # hot path (every op of every new block): no context managers or generator expressions,
        # and the one-input one-output case (most ops) without list building
        if name is not None:
            self._push(name, module_type or LEAF_TYPES[kind])
        x = inputs[0]
        if inplace:
            outs = [T(x.id, tuple(s), x.contiguous) for s in outputs]
        else:
            layout = True
            if kind in LAYOUT_PRESERVING:
                # conv, BN, activations, pools keep the input's order even when the shape changes
                # (a channels-last map stays so through a 4 -> 8 channel conv); an elementwise
                # result follows its first operand of the full output shape (TensorIterator)
                if kind in _BROADCASTING:
                    out_shape = tuple(outputs[0])
                    for t in inputs:
                        if t.shape == out_shape:
                            layout = t.contiguous
                            break
                else:
                    layout = x.contiguous
            outs = []
            for shape in outputs:
                self._next_id += 1
                outs.append(T(self._next_id, tuple(shape), layout))
        scope = self._scope[-1] if self._scope else ("", "", "")
        if len(inputs) == 1 and len(outs) == 1:
            y = outs[0]
            in_shapes, out_shapes, in_ids, out_ids = (x.shape,), (y.shape,), (x.id,), (y.id,)
        else:
            in_shapes = tuple([t.shape for t in inputs])
            out_shapes = tuple([t.shape for t in outs])
            in_ids = tuple([t.id for t in inputs])
            out_ids = tuple([t.id for t in outs])
        self.ops.append(Op(kind, in_shapes, out_shapes, tuple(weights), tuple(buffers), attrs, scope[2], scope[1],
                           in_ids, out_ids))
        if name is not None:
            self._scope.pop()
        return outs

    # -- primitives with closed-form shapes ----------------------------------------------
    def conv2d(self, x: T, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
               padding: int | tuple[int, int] | None = None, dilation: int = 1, groups: int = 1,
               bias: bool = False, name: str | None = "conv") -> T:
        """``padding=None`` is "same"-style: ``dilation * (k - 1) // 2``."""
        n, c, h, w = x.shape
        kh, kw = _pair(kernel_size)
        dh, dw = _pair(dilation)
        if padding is None:
            padding = ((kh - 1) // 2 * dh, (kw - 1) // 2 * dw)
        ph, pw = _pair(padding)
        sh, sw = _pair(stride)
        ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        weights: list[Shape] = [(out_channels, c // groups, kh, kw)]
        if bias:
            weights.append((out_channels,))
        # make_attrs' canonical (sorted) order, written out: conv is the most frequent op
        attrs = (("dilation", (dh, dw)), ("groups", groups), ("padding", (ph, pw)), ("stride", (sh, sw)))
        return self.op("conv2d", [x], [(n, out_channels, ho, wo)], weights, attrs=attrs, name=name)[0]

    def linear(self, x: T, out_features: int, bias: bool = True, name: str | None = "fc") -> T:
        """A linear layer on ``[..., in]``; recorded flattened to 2-D, returned unflattened."""
        *lead, in_features = x.shape
        rows = _prod(lead)
        weights: list[Shape] = [(out_features, in_features)]
        if bias:
            weights.append((out_features,))
        y = self.op("linear", [self.view(x, (rows, in_features))], [(rows, out_features)], weights,
                    name=name)[0]
        return self.view(y, (*lead, out_features))

    def matmul(self, a: T, b: T) -> T:
        """``a[..., m, k] @ b[..., k, n]``, recorded as a batched 3-D matmul."""
        *lead, m, k = a.shape
        n = b.shape[-1]
        batch = _prod(lead)
        y = self.op("matmul", [self.view(a, (batch, m, k)), self.view(b, (batch, k, n))], [(batch, m, n)])[0]
        return self.view(y, (*lead, m, n))

    def batch_norm(self, x: T, affine: bool = True, name: str | None = "bn") -> T:
        c = x.shape[1]
        weights = [(c,), (c,)] if affine else []
        return self.op("batch_norm", [x], [x.shape], weights, buffers=[(c,), (c,)], name=name)[0]

    def layer_norm(self, x: T, affine: bool = True, name: str | None = "norm",
                   module_type: str | None = None) -> T:
        """LayerNorm over the last dim (channels-last)."""
        c = x.shape[-1]
        weights = [(c,), (c,)] if affine else []
        return self.op("layer_norm", [x], [x.shape], weights, name=name, module_type=module_type)[0]

    def act(self, x: T, kind: str, name: str | None = "act") -> T:
        """An activation; ``kind="none"`` is the identity and records nothing."""
        if kind == "none":
            return x
        return self.op(kind, [x], [x.shape], name=name)[0]

    def binary(self, kind: str, a: T, b: T | None = None, weight: Shape | None = None) -> T:
        """Functional elementwise add/mul/...: ``b`` an activation operand, ``weight`` a learnable one."""
        inputs = [a] if b is None else [a, b]
        other = b.shape if b is not None else (weight or ())
        out = _broadcast(a.shape, other)
        return self.op(kind, inputs, [out], [weight] if weight is not None else [])[0]

    def avg_pool2d(self, x: T, kernel_size: int, stride: int | None = None, padding: int = 0,
                   name: str | None = "pool") -> T:
        return self._pool("avg_pool2d", x, kernel_size, stride, padding, name)

    def max_pool2d(self, x: T, kernel_size: int, stride: int | None = None, padding: int = 0,
                   name: str | None = "pool") -> T:
        return self._pool("max_pool2d", x, kernel_size, stride, padding, name)

    def _pool(self, kind: str, x: T, kernel_size: int, stride: int | None, padding: int,
              name: str | None) -> T:
        n, c, h, w = x.shape
        k = kernel_size
        s = stride or kernel_size
        ho = (h + 2 * padding - k) // s + 1
        wo = (w + 2 * padding - k) // s + 1
        attrs = make_attrs(kernel_size=(k, k), stride=(s, s), padding=(padding, padding))
        return self.op(kind, [x], [(n, c, ho, wo)], attrs=attrs, name=name)[0]

    def global_avg_pool(self, x: T, name: str | None = "pool") -> T:
        """``nn.AdaptiveAvgPool2d(1)``: [N,C,H,W] -> [N,C,1,1]."""
        n, c, _, _ = x.shape
        return self.op("adaptive_avg_pool2d", [x], [(n, c, 1, 1)], attrs=make_attrs(output_size=(1, 1)),
                       name=name)[0]

    def mean(self, x: T, dims: tuple[int, ...], keepdim: bool = False) -> T:
        """Functional ``x.mean(dims, keepdim)``."""
        rank = len(x.shape)
        dims = tuple(sorted(d % rank for d in dims))
        if keepdim:
            out = tuple(1 if i in dims else s for i, s in enumerate(x.shape))
        else:
            out = tuple(s for i, s in enumerate(x.shape) if i not in dims)
        return self.op("mean", [x], [out], attrs=make_attrs(dims=dims, keepdim=keepdim))[0]

    def softmax(self, x: T, dim: int = -1) -> T:
        """Functional ``x.softmax(dim)``."""
        return self.op("softmax", [x], [x.shape], attrs=make_attrs(dim=dim % len(x.shape)))[0]

    def copy(self, x: T, shape: Sequence[int] | None = None) -> T:
        """A materializing copy (``contiguous()``/``clone()``), optionally of a permuted view;
        the result is in row-major order."""
        return self.op("copy", [x], [tuple(shape) if shape is not None else x.shape])[0]

    def concat(self, xs: Sequence[T], dim: int = 1) -> T:
        d = dim % len(xs[0].shape)
        out = list(xs[0].shape)
        out[d] = sum(x.shape[d] for x in xs)
        return self.op("concat", list(xs), [tuple(out)], attrs=make_attrs(dim=d))[0]

    def split(self, x: T, sizes: Sequence[int], dim: int = 1) -> list[T]:
        """A view: the parts share the input's storage."""
        d = dim % len(x.shape)
        shapes = []
        for size in sizes:
            s = list(x.shape)
            s[d] = size
            shapes.append(tuple(s))
        return self.op("split", [x], shapes, attrs=make_attrs(dim=d, sizes=tuple(sizes)), inplace=True)


def _prod(dims: Sequence[int]) -> int:
    out = 1
    for d in dims:
        out *= d
    return out


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _broadcast(a: Shape, b: Shape) -> Shape:
    n = max(len(a), len(b))
    a2 = (1,) * (n - len(a)) + tuple(a)
    b2 = (1,) * (n - len(b)) + tuple(b)
    return tuple(max(x, y) for x, y in zip(a2, b2, strict=True))
