"""Expansion of whole networks: blocks in order, each from the per-block memo."""

from __future__ import annotations

from dataclasses import dataclass

from cost_engine.expand.registry import ShapeError, expand_block_layout
from cost_engine.ops import Op, Shape
from cost_engine.spec.base import FieldError, Spec, SpecError
from cost_engine.spec.network import NetworkSpec


@dataclass(frozen=True, slots=True)
class PlacedBlock:
    """A block at its place in a network: module path, spec path, and the shapes around it."""

    module: str
    spec_path: str
    spec: Spec
    input_shape: Shape
    output_shape: Shape
    output_id: int
    ops: tuple[Op, ...]
    channels_last: bool = False  # the input's memory order (see expand_block_layout)


def input_shape_of(candidate: Spec, batch_size: int, resolution: int | None,
                   in_channels: int | None = None) -> Shape:
    """The input shape of a candidate: a network's own (resolution overridable); a standalone
    block's from ``resolution`` and ``in_channels``, which it then needs."""
    if isinstance(candidate, NetworkSpec):
        r = resolution or candidate.resolution
        return (batch_size, candidate.in_channels, r, r)
    if resolution is None or in_channels is None:
        missing = "resolution" if resolution is None else "in_channels"
        raise SpecError([FieldError(missing, "a standalone block needs resolution and in_channels")])
    return (batch_size, in_channels, resolution, resolution)


def _spec_path(module: str) -> str:
    head, *rest = module.split(".")
    return head + "".join(f"[{r}]" for r in rest)


def network_blocks(candidate: Spec, input_shape: Shape) -> list[PlacedBlock]:
    """Every block of ``candidate`` with its shapes; a single block is a one-block network."""
    blocks = candidate.blocks() if isinstance(candidate, NetworkSpec) else [("", candidate)]
    placed: list[PlacedBlock] = []
    shape = tuple(input_shape)
    channels_last = False
    for module, block in blocks:
        try:
            ops, out_id, out, out_cl = expand_block_layout(block, shape, channels_last)
        except ShapeError as exc:
            prefix = _spec_path(module) if module else ""
            path = f"{prefix}.{exc.field}" if prefix else exc.field
            raise SpecError([FieldError(path, f"{exc.reason} (input shape {list(shape)})")]) from None
        placed.append(PlacedBlock(module, _spec_path(module) if module else "", block, shape, out, out_id, ops,
                                  channels_last))
        shape, channels_last = out, out_cl
    return placed


def expand(candidate: Spec, input_shape: Shape) -> list[Op]:
    """The full op list of a candidate, with network module paths and network-wide tensor ids."""
    ops: list[Op] = []
    last_id = 1  # the network input
    next_id = 2
    for block in network_blocks(candidate, input_shape):
        mapping = {1: last_id}
        for op in block.ops:
            for i in op.input_ids + op.output_ids:
                if i not in mapping:
                    mapping[i] = next_id
                    next_id += 1
            moved = op.with_module_prefix(block.module)
            ops.append(Op(moved.kind, moved.inputs, moved.outputs, moved.weights, moved.buffers, moved.attrs,
                          moved.module, moved.module_type, tuple(mapping[i] for i in op.input_ids),
                          tuple(mapping[i] for i in op.output_ids)))
        last_id = mapping[block.output_id]
    return ops
