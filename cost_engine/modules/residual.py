"""Modules of the residual and transformer blocks; structure, attribute names and op order mirror
:mod:`cost_engine.expand.residual` (which documents the reference architectures and the copies)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cost_engine.expand.residual import hidden_features, needs_projection, regnet_widths
from cost_engine.modules.mobile import SqueezeExcite, conv_bn_act
from cost_engine.modules.registry import act_module, block_module, builder
from cost_engine.ops import Shape
from cost_engine.spec.blocks import (
    ConvNeXtBlockSpec,
    RegNetBlockSpec,
    ResNetBasicSpec,
    ResNetBottleneckSpec,
    TransformerBlockSpec,
)
from cost_engine.spec.tokens import PatchEmbedSpec, TokenPoolSpec, TokensSpec


@block_module(ResNetBasicSpec)
class ResNetBasicBlock(nn.Module):
    def __init__(self, spec: ResNetBasicSpec, in_channels: int):
        super().__init__()
        out = spec.out_channels
        self.conv1 = conv_bn_act(in_channels, out, 3, spec.stride, act="relu")
        self.conv2 = conv_bn_act(out, out, 3)
        project = needs_projection(in_channels, out, spec.stride)
        self.downsample = conv_bn_act(in_channels, out, 1, spec.stride) if project else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        shortcut = self.downsample(x) if self.downsample is not None else x
        return self.relu(y + shortcut)


@block_module(ResNetBottleneckSpec)
class ResNetBottleneck(nn.Module):
    def __init__(self, spec: ResNetBottleneckSpec, in_channels: int):
        super().__init__()
        width, out = spec.width, spec.width * spec.expansion
        self.conv1 = conv_bn_act(in_channels, width, 1, act="relu")
        self.conv2 = conv_bn_act(width, width, 3, spec.stride, groups=spec.groups, act="relu")
        self.conv3 = conv_bn_act(width, out, 1)
        project = needs_projection(in_channels, out, spec.stride)
        self.downsample = conv_bn_act(in_channels, out, 1, spec.stride) if project else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.conv2(self.conv1(x)))
        shortcut = self.downsample(x) if self.downsample is not None else x
        return self.relu(y + shortcut)


@block_module(RegNetBlockSpec)
class RegNetBlock(nn.Module):
    def __init__(self, spec: RegNetBlockSpec, in_channels: int):
        super().__init__()
        w_b, groups, squeeze = regnet_widths(in_channels, spec)
        out = spec.out_channels
        project = needs_projection(in_channels, out, spec.stride)
        self.proj = conv_bn_act(in_channels, out, 1, spec.stride) if project else None
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["a"] = conv_bn_act(in_channels, w_b, 1, act="relu")
        layers["b"] = conv_bn_act(w_b, w_b, 3, spec.stride, groups=groups, act="relu")
        if squeeze:
            layers["se"] = SqueezeExcite(w_b, squeeze, "relu")
        layers["c"] = conv_bn_act(w_b, out, 1)
        self.f = nn.Sequential(layers)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.proj(x) if self.proj is not None else x
        return self.act(shortcut + self.f(x))


@block_module(ConvNeXtBlockSpec)
class ConvNeXtBlock(nn.Module):
    def __init__(self, spec: ConvNeXtBlockSpec, in_channels: int):
        super().__init__()
        c, k = in_channels, spec.kernel_size
        hidden = hidden_features(c, spec.mlp_ratio)
        self.dwconv = nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=True)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pwconv1 = nn.Linear(c, hidden)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(hidden, c)
        self.layer_scale = nn.Parameter(torch.full((c, 1, 1), 1e-6)) if spec.layer_scale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        y = y.permute(0, 3, 1, 2)
        if self.layer_scale is not None:
            y = self.layer_scale * y
        return y + x


class Attention(nn.Module):
    """timm ``Attention`` on its non-fused path (every matmul is a visible op)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, d = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        a = q @ k.transpose(-2, -1)
        a = a * self.scale
        a = a.softmax(dim=-1)
        x = (a @ v).transpose(1, 2).reshape(n, length, d)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act_module(act)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        if self.act is not None:
            x = self.act(x)
        return self.fc2(x)


class TransformerBlock(nn.Module):
    def __init__(self, spec: TransformerBlockSpec, dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, spec.heads, spec.qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden_features(dim, spec.mlp_ratio), spec.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


@block_module(PatchEmbedSpec)
class PatchEmbed(nn.Module):
    def __init__(self, spec: PatchEmbedSpec, in_channels: int):
        super().__init__()
        p = spec.patch_size
        self.proj = nn.Conv2d(in_channels, spec.out_channels, p, p, bias=spec.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Tokens(nn.Module):
    def __init__(self, spec: TokensSpec, input_shape: Shape):
        super().__init__()
        _, c, h, w = input_shape
        length = h * w + (1 if spec.class_token else 0)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c)) if spec.class_token else None
        self.pos_embed = nn.Parameter(torch.randn(1, length, c) * 0.02) if spec.pos_embed else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        return x


class TokenPool(nn.Module):
    def __init__(self, spec: TokenPoolSpec):
        super().__init__()
        self.mode = spec.mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0] if self.mode == "cls" else x.mean(dim=1)






@builder(TransformerBlockSpec)
def transformer(spec: TransformerBlockSpec, input_shape: Shape) -> nn.Module:
    return TransformerBlock(spec, input_shape[-1])



@builder(TokensSpec)
def tokens(spec: TokensSpec, input_shape: Shape) -> nn.Module:
    return Tokens(spec, input_shape)


@builder(TokenPoolSpec)
def token_pool(spec: TokenPoolSpec, input_shape: Shape) -> nn.Module:
    return TokenPool(spec)

