"""Modules of the plain blocks; structure mirrors :mod:`cost_engine.expand.basic`."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cost_engine.expand.basic import conv_padding
from cost_engine.modules.registry import act_module, block_module, builder
from cost_engine.ops import Shape
from cost_engine.spec.blocks import ConvSpec, LinearSpec, NormSpec, PoolSpec


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of an [N, C, H, W] map (ConvNeXt), computed channels-last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def norm2d_module(norm: str, channels: int) -> tuple[str, nn.Module] | None:
    if norm == "batch":
        return "bn", nn.BatchNorm2d(channels)
    if norm == "layer":
        return "norm", LayerNorm2d(channels, eps=1e-6)
    return None


@block_module(ConvSpec)
class ConvBlock(nn.Module):
    def __init__(self, spec: ConvSpec, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, spec.out_channels, spec.kernel_size, spec.stride,
                              conv_padding(spec.kernel_size, spec.dilation), spec.dilation, spec.groups,
                              bias=spec.bias)
        self.norm_name = None
        named = norm2d_module(spec.norm, spec.out_channels)
        if named is not None:
            self.norm_name = named[0]
            self.add_module(*named)
        self.act = act_module(spec.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm_name is not None:
            x = getattr(self, self.norm_name)(x)
        return self.act(x) if self.act is not None else x



class PoolBlock(nn.Module):
    def __init__(self, spec: PoolSpec):
        super().__init__()
        self.flatten = spec.flatten
        if spec.mode == "global_avg":
            self.pool: nn.Module = nn.AdaptiveAvgPool2d(1)
        elif spec.mode == "max":
            self.pool = nn.MaxPool2d(spec.kernel_size, spec.stride, spec.padding)
        else:
            self.pool = nn.AvgPool2d(spec.kernel_size, spec.stride, spec.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        return torch.flatten(x, 1) if self.flatten else x


@builder(PoolSpec)
def pool(spec: PoolSpec, input_shape: Shape) -> nn.Module:
    return PoolBlock(spec)


class NormBlock(nn.Module):
    def __init__(self, spec: NormSpec, input_shape: Shape):
        super().__init__()
        if len(input_shape) == 4:
            name, module = norm2d_module(spec.norm, input_shape[1])  # type: ignore[misc]
        else:
            name, module = "norm", nn.LayerNorm(input_shape[-1], eps=1e-6)
        self.name = name
        self.add_module(name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.name)(x)


@builder(NormSpec)
def norm(spec: NormSpec, input_shape: Shape) -> nn.Module:
    return NormBlock(spec, input_shape)


class LinearBlock(nn.Module):
    def __init__(self, spec: LinearSpec, in_features: int):
        super().__init__()
        self.fc = nn.Linear(in_features, spec.out_features, bias=spec.bias)
        self.act = act_module(spec.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = torch.flatten(x, 1)
        x = self.fc(x)
        return self.act(x) if self.act is not None else x


@builder(LinearSpec)
def linear(spec: LinearSpec, input_shape: Shape) -> nn.Module:
    in_features = input_shape[1] * input_shape[2] * input_shape[3] if len(input_shape) == 4 else input_shape[-1]
    return LinearBlock(spec, in_features)
