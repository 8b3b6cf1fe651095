"""Modules of the mobile blocks; structure, attribute names and op order mirror
:mod:`cost_engine.expand.mobile` (which documents the reference architectures)."""

from __future__ import annotations

import torch
from torch import nn

from cost_engine.expand.mobile import expanded_channels, fasternet_widths, se_channels
from cost_engine.modules.basic import ConvBlock
from cost_engine.modules.registry import act_module, block_module
from cost_engine.spec.blocks import (
    ConvSpec,
    DepthwiseSeparableSpec,
    FasterNetBlockSpec,
    FusedMBConvSpec,
    MBConvSpec,
    ShuffleV2UnitSpec,
)


def conv_bn_act(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                act: str = "none") -> ConvBlock:
    """The plain conv block: conv (no bias) + BatchNorm2d [+ activation]."""
    spec = ConvSpec(out_channels=out_channels, kernel_size=kernel_size, stride=stride, groups=groups,
                    norm="batch", act=act)
    return ConvBlock(spec, in_channels)


class SqueezeExcite(nn.Module):
    """torchvision ``SqueezeExcitation``: pool, reduce (bias), act, expand (bias), sigmoid, ``x * gate``."""

    def __init__(self, channels: int, squeeze: int, act: str):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1, bias=True)
        self.act = act_module(act)
        self.expand = nn.Conv2d(squeeze, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.reduce(self.pool(x))
        if self.act is not None:
            s = self.act(s)
        s = self.gate(self.expand(s))
        return x * s


def _maybe_se(channels: int, in_channels: int, se_ratio: float, act: str) -> SqueezeExcite | None:
    return SqueezeExcite(channels, se_channels(in_channels, se_ratio), act) if se_ratio > 0 else None


@block_module(DepthwiseSeparableSpec)
class DepthwiseSeparable(nn.Module):
    def __init__(self, spec: DepthwiseSeparableSpec, in_channels: int):
        super().__init__()
        c = in_channels
        self.dw = conv_bn_act(c, c, spec.kernel_size, spec.stride, groups=c, act=spec.act)
        self.se = _maybe_se(c, c, spec.se_ratio, spec.act)
        self.pw = conv_bn_act(c, spec.out_channels, 1, act=spec.act if spec.pw_act else "none")
        self.residual = spec.skip and spec.stride == 1 and c == spec.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x)
        if self.se is not None:
            y = self.se(y)
        y = self.pw(y)
        return y + x if self.residual else y


@block_module(MBConvSpec)
class MBConv(nn.Module):
    def __init__(self, spec: MBConvSpec, in_channels: int):
        super().__init__()
        c = in_channels
        hidden = expanded_channels(c, spec.expand_ratio)
        self.expand = conv_bn_act(c, hidden, 1, act=spec.act) if spec.expand_ratio != 1 else None
        self.dw = conv_bn_act(hidden, hidden, spec.kernel_size, spec.stride, groups=hidden, act=spec.act)
        self.se = _maybe_se(hidden, c, spec.se_ratio, spec.act)
        self.project = conv_bn_act(hidden, spec.out_channels, 1)
        self.residual = spec.skip and spec.stride == 1 and c == spec.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.dw(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return y + x if self.residual else y


@block_module(FusedMBConvSpec)
class FusedMBConv(nn.Module):
    def __init__(self, spec: FusedMBConvSpec, in_channels: int):
        super().__init__()
        c = in_channels
        self.residual = spec.skip and spec.stride == 1 and c == spec.out_channels
        self.first_name = "conv" if spec.expand_ratio == 1 else "expand"
        if spec.expand_ratio == 1:
            self.conv = conv_bn_act(c, spec.out_channels, spec.kernel_size, spec.stride, act=spec.act)
            self.se = _maybe_se(spec.out_channels, c, spec.se_ratio, spec.act)
            self.project = None
        else:
            hidden = expanded_channels(c, spec.expand_ratio)
            self.expand = conv_bn_act(c, hidden, spec.kernel_size, spec.stride, act=spec.act)
            self.se = _maybe_se(hidden, c, spec.se_ratio, spec.act)
            self.project = conv_bn_act(hidden, spec.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = getattr(self, self.first_name)(x)
        if self.se is not None:
            y = self.se(y)
        if self.project is not None:
            y = self.project(y)
        return y + x if self.residual else y


class PartialConv(nn.Module):
    """Official FasterNet ``Partial_conv3``: a kxk conv on the first ``c // n_div`` channels only."""

    def __init__(self, channels: int, n_div: int, kernel_size: int, forward: str):
        super().__init__()
        self.dim_conv3 = channels // n_div
        self.dim_untouched = channels - self.dim_conv3
        self.partial_conv3 = nn.Conv2d(self.dim_conv3, self.dim_conv3, kernel_size, 1, (kernel_size - 1) // 2,
                                       bias=False)
        self.mode = forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "slicing":  # inference-only: keep the input intact for the residual
            x = x.clone()
            x[:, : self.dim_conv3, :, :] = self.partial_conv3(x[:, : self.dim_conv3, :, :])
            return x
        x1, x2 = torch.split(x, [self.dim_conv3, self.dim_untouched], dim=1)
        x1 = self.partial_conv3(x1)
        return torch.cat((x1, x2), 1)


@block_module(FasterNetBlockSpec)
class FasterNetBlock(nn.Module):
    """Official FasterNet ``MLPBlock`` (DropPath and the disabled layer scale omitted: identities)."""

    def __init__(self, spec: FasterNetBlockSpec, channels: int):
        super().__init__()
        _, hidden = fasternet_widths(channels, spec.n_div, spec.mlp_ratio)
        self.spatial_mixing = PartialConv(channels, spec.n_div, spec.kernel_size, spec.forward)
        layers: list[nn.Module] = [nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden)]
        act = act_module(spec.act)
        if act is not None:
            layers.append(act)
        layers.append(nn.Conv2d(hidden, channels, 1, bias=False))
        if act is None:  # keep the index of the second conv at 3, as the expansion names it
            self.mlp = nn.Sequential()
            for name, layer in zip(("0", "1", "3"), layers, strict=True):
                self.mlp.add_module(name, layer)
        else:
            self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.spatial_mixing(x)
        return shortcut + self.mlp(x)


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """torchvision's: view, transpose, ``contiguous()`` (the copy), view."""
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(n, -1, h, w)


@block_module(ShuffleV2UnitSpec)
class ShuffleV2Unit(nn.Module):
    """torchvision ShuffleNetV2 ``InvertedResidual`` (kernel size generalized)."""

    def __init__(self, spec: ShuffleV2UnitSpec, in_channels: int):
        super().__init__()
        self.stride = spec.stride
        half = spec.out_channels // 2
        k, pad = spec.kernel_size, (spec.kernel_size - 1) // 2
        if spec.stride > 1:
            c = in_channels
            self.branch1 = nn.Sequential(
                nn.Conv2d(c, c, k, spec.stride, pad, groups=c, bias=False),
                nn.BatchNorm2d(c),
                nn.Conv2d(c, half, 1, bias=False),
                nn.BatchNorm2d(half),
                nn.ReLU(),
            )
        self.branch2 = nn.Sequential(
            nn.Conv2d(in_channels if spec.stride > 1 else half, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(),
            nn.Conv2d(half, half, k, spec.stride, pad, groups=half, bias=False),
            nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)





