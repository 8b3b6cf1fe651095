"""Networks as modules with the same paths the expansion uses: stem.i, stages.s.i, head.i."""

from __future__ import annotations

import torch
from torch import nn

from cost_engine.expand.network import input_shape_of, network_blocks
from cost_engine.modules.registry import build_block
from cost_engine.ops import Shape
from cost_engine.spec.base import Spec
from cost_engine.spec.network import NetworkSpec


class Network(nn.Module):
    def __init__(self, stem: list[nn.Module], stages: list[list[nn.Module]], head: list[nn.Module]):
        super().__init__()
        self.stem = nn.Sequential(*stem)
        self.stages = nn.Sequential(*(nn.Sequential(*s) for s in stages))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def build(candidate: Spec | str, input_shape: Shape | None = None, *, in_channels: int | None = None,
          resolution: int | None = None) -> nn.Module:
    """The ``nn.Module`` of a candidate (spec or built-in name), randomly initialized, in eval
    mode: every figure of the oracle is an inference cost, and tools such as fvcore count
    BatchNorm differently in training mode (call ``.train()`` to train it).

    A network needs no shape; a standalone block needs its ``input_shape`` (or ``in_channels``
    and ``resolution``).
    """
    from cost_engine.families import resolve

    spec = resolve(candidate)
    if input_shape is None:
        input_shape = input_shape_of(spec, 1, resolution, in_channels)
    if not isinstance(spec, NetworkSpec):
        return build_block(spec, input_shape).eval()
    modules = {b.module: build_block(b.spec, b.input_shape) for b in network_blocks(spec, input_shape)}
    stem = [modules[f"stem.{i}"] for i in range(len(spec.stem))]
    stages = [[modules[f"stages.{s}.{i}"] for i in range(len(st))] for s, st in enumerate(spec.stages)]
    head = [modules[f"head.{i}"] for i in range(len(spec.head))]
    return Network(stem, stages, head).eval()
