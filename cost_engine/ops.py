"""The primitive op: the one record that both closed-form expansion and the aten tracer produce.

Both producers must agree on exactly these fields, so that a test can compare their op lists
element by element. Tensor identities (``input_ids``/``output_ids``) are excluded from equality:
they only carry the data flow needed for liveness (peak activation memory) and fusion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any

Shape = tuple[int, ...]
Attrs = tuple[tuple[str, Any], ...]


@dataclass(slots=True, unsafe_hash=True)
class Op:
    """One primitive op of an inference forward.

    ``inputs`` are activation operands (read), ``weights`` learnable parameters (read, and
    counted as params), ``buffers`` non-learnable state such as BN running stats (read),
    ``outputs`` what the op writes. ``attrs`` hold kind-specific settings as sorted pairs.
    Treated as immutable, but not ``frozen``: a frozen dataclass's ``__init__`` costs ~8x more,
    and an EfficientNet expansion creates hundreds of these on the hot path.

    ``module`` is the dotted path of the innermost ``nn.Module`` that ran the op in the built
    network ("" for the root) and ``module_type`` its class name: an op run by a leaf module
    (``Conv2d``) versus one run functionally in a block's ``forward`` (the residual ``add`` of an
    ``MBConv``) is what module-hook counters such as thop and ptflops tell apart.
    """

    kind: str
    inputs: tuple[Shape, ...]
    outputs: tuple[Shape, ...]
    weights: tuple[Shape, ...] = ()
    buffers: tuple[Shape, ...] = ()
    attrs: Attrs = ()
    module: str = ""
    module_type: str = ""
    input_ids: tuple[int, ...] = field(default=(), compare=False)
    output_ids: tuple[int, ...] = field(default=(), compare=False)

    def attr(self, name: str, default: Any = None) -> Any:
        for key, value in self.attrs:
            if key == name:
                return value
        return default

    def with_module_prefix(self, prefix: str) -> Op:
        if not prefix:
            return self
        module = f"{prefix}.{self.module}" if self.module else prefix
        return Op(self.kind, self.inputs, self.outputs, self.weights, self.buffers, self.attrs, module,
                  self.module_type, self.input_ids, self.output_ids)

    def comparable(self) -> tuple:
        """The fields an expansion and a trace must agree on (everything but tensor ids)."""
        return (self.kind, self.inputs, self.outputs, self.weights, self.buffers, self.attrs, self.module,
                self.module_type)


def numel(shape: Shape) -> int:
    return prod(shape)


def make_attrs(**kwargs: Any) -> Attrs:
    """Attributes in a canonical (sorted, hashable) order."""
    return tuple(sorted((k, _freeze(v)) for k, v in kwargs.items()))


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def conv_type(op: Op) -> str:
    """A 2-d convolution's kind: ``conv`` (dense k x k), ``pwconv`` (1x1), ``dwconv`` (one group
    per channel) or ``gconv``. Kinds time differently at equal FLOPs: the kernel model's unit
    types (``latency/kernels.py``) and the reference family (``latency/reference.py``)."""
    groups = int(op.attr("groups", 1))
    cin = op.inputs[0][1]
    if groups == 1:
        kh, kw = op.weights[0][2], op.weights[0][3]
        return "pwconv" if (kh, kw) == (1, 1) else "conv"
    return "dwconv" if groups == cin == op.outputs[0][1] else "gconv"
