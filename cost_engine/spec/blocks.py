"""Block specs: the building blocks a NAS search space is made of.

A block's input channel count and spatial size come from the tensor that flows into it, so a
block names only what it produces; the same block spec at the same input shape always has the
same cost (the key of block memoization).
"""

from __future__ import annotations

from dataclasses import dataclass

from cost_engine.spec.base import (
    ACTIVATIONS,
    MAX_CHANNELS,
    MAX_HEADS,
    MAX_KERNEL,
    MAX_STRIDE,
    Spec,
    bounded,
    register,
)

NORMS = ("batch", "layer", "none")
POOLS = ("max", "avg", "global_avg")


def _channels(default: int | object = ..., doc: str = "") -> int:
    if default is ...:
        return bounded(lo=1, hi=MAX_CHANNELS, doc=doc)
    return bounded(default, lo=1, hi=MAX_CHANNELS, doc=doc)


def _kernel(default: int = 3) -> int:
    return bounded(default, lo=1, hi=MAX_KERNEL, odd=True)


def _stride(default: int = 1) -> int:
    return bounded(default, lo=1, hi=MAX_STRIDE)


def _act(default: str) -> str:
    return bounded(default, choices=ACTIVATIONS)


def _ratio(default: float, lo: float = 0.0, hi: float = 64.0) -> float:
    return bounded(default, lo=lo, hi=hi)


@register("conv")
@dataclass(frozen=True)
class ConvSpec(Spec):
    """Conv2d [+ norm] [+ activation]: regular, depthwise (groups = channels), pointwise, grouped.

    Padding is "same"-style, ``dilation * (kernel - 1) // 2``; even kernels (patchify stems,
    2x2 merging) are allowed here, with zero padding.
    """

    out_channels: int = _channels()
    kernel_size: int = bounded(3, lo=1, hi=MAX_KERNEL)
    stride: int = _stride()
    groups: int = bounded(1, lo=1, hi=MAX_CHANNELS)
    dilation: int = bounded(1, lo=1, hi=16)
    bias: bool = False
    norm: str = bounded("batch", choices=NORMS)
    act: str = _act("relu")

    def check(self) -> list[tuple[str, str]]:
        if self.out_channels % self.groups:
            return [("groups", f"must divide out_channels ({self.out_channels}), got {self.groups}")]
        return []


@register("dwsep")
@dataclass(frozen=True)
class DepthwiseSeparableSpec(Spec):
    """Depthwise kxk conv-BN-act [+ SE], then pointwise 1x1 conv-BN (MobileNetV1 / EfficientNet e=1)."""

    out_channels: int = _channels()
    kernel_size: int = _kernel()
    stride: int = _stride()
    se_ratio: float = _ratio(0.0, hi=1.0)
    act: str = _act("relu")
    pw_act: bool = False
    skip: bool = True


@register("mbconv")
@dataclass(frozen=True)
class MBConvSpec(Spec):
    """Inverted residual: 1x1 expand (when expand_ratio > 1), kxk depthwise, SE, 1x1 project.

    ``se_ratio`` is relative to the block's *input* channels (EfficientNet:
    ``max(1, int(in * se_ratio))``); 0 disables SE. The residual is used when ``skip`` and
    stride 1 and in == out channels.
    """

    out_channels: int = _channels()
    expand_ratio: float = _ratio(6.0, lo=1.0, hi=16.0)
    kernel_size: int = _kernel()
    stride: int = _stride()
    se_ratio: float = _ratio(0.25, hi=1.0)
    act: str = _act("silu")
    skip: bool = True


@register("fused_mbconv")
@dataclass(frozen=True)
class FusedMBConvSpec(Spec):
    """EfficientNetV2 Fused-MBConv: kxk conv expand (stride here), [SE], 1x1 project (when e > 1)."""

    out_channels: int = _channels()
    expand_ratio: float = _ratio(4.0, lo=1.0, hi=16.0)
    kernel_size: int = _kernel()
    stride: int = _stride()
    se_ratio: float = _ratio(0.0, hi=1.0)
    act: str = _act("silu")
    skip: bool = True


@register("fasternet")
@dataclass(frozen=True)
class FasterNetBlockSpec(Spec):
    """FasterNet block: PConv on the first ``channels // n_div`` channels, then 1x1 (c -> mlp*c)
    + BN + act, 1x1 (mlp*c -> c), residual. Output channels equal input channels.

    ``forward`` selects the PConv implementation: ``split_cat`` (split, conv, concat) or
    ``slicing`` (clone, conv on the slice, write back), as in the paper's code.
    """

    n_div: int = bounded(4, lo=1, hi=64)
    mlp_ratio: float = _ratio(2.0, lo=0.25, hi=16.0)
    kernel_size: int = _kernel()
    act: str = _act("relu")
    forward: str = bounded("split_cat", choices=("split_cat", "slicing"))


@register("resnet_basic")
@dataclass(frozen=True)
class ResNetBasicSpec(Spec):
    """Two 3x3 conv-BN with ReLU; 1x1 conv-BN projection shortcut when shape changes."""

    out_channels: int = _channels()
    stride: int = _stride()


@register("resnet_bottleneck")
@dataclass(frozen=True)
class ResNetBottleneckSpec(Spec):
    """torchvision v1.5 bottleneck: 1x1, 3x3 (stride, groups), 1x1 x expansion; ``width`` is the
    3x3's channels, output is ``width * expansion`` (ResNeXt via ``groups``)."""

    width: int = _channels()
    stride: int = _stride()
    groups: int = bounded(1, lo=1, hi=MAX_CHANNELS)
    expansion: int = bounded(4, lo=1, hi=16)

    def check(self) -> list[tuple[str, str]]:
        if self.width % self.groups:
            return [("groups", f"must divide width ({self.width}), got {self.groups}")]
        return []


@register("shufflenet_v2")
@dataclass(frozen=True)
class ShuffleV2UnitSpec(Spec):
    """ShuffleNetV2 unit. Stride 1: split channels in half, branch on one half, concat, shuffle.
    Stride 2 (downsampling): both branches on the whole input, output channels ``out_channels``."""

    out_channels: int = _channels()
    stride: int = bounded(1, lo=1, hi=2)
    kernel_size: int = _kernel()

    def check(self) -> list[tuple[str, str]]:
        if self.out_channels % 2:
            return [("out_channels", f"must be even, got {self.out_channels}")]
        return []


@register("regnet")
@dataclass(frozen=True)
class RegNetBlockSpec(Spec):
    """RegNet X (se_ratio 0) / Y block: 1x1, 3x3 group conv (stride), [SE], 1x1; residual.

    Bottleneck width ``round(out * bottleneck_ratio)`` with groups ``width // group_width``;
    SE squeeze ``round(in * se_ratio)`` as in pycls/torchvision.
    """

    out_channels: int = _channels()
    stride: int = _stride()
    group_width: int = bounded(16, lo=1, hi=MAX_CHANNELS)
    bottleneck_ratio: float = _ratio(1.0, lo=0.0625, hi=16.0)
    se_ratio: float = _ratio(0.0, hi=1.0)

    def check(self) -> list[tuple[str, str]]:
        width = round(self.out_channels * self.bottleneck_ratio)
        if width < 1:
            return [("bottleneck_ratio", f"gives a bottleneck width of {width}; it must be at least 1")]
        if width % min(self.group_width, width):
            return [("group_width", f"must divide the bottleneck width ({width}), got {self.group_width}")]
        return []


@register("convnext")
@dataclass(frozen=True)
class ConvNeXtBlockSpec(Spec):
    """ConvNeXt block: 7x7 depthwise, LayerNorm (channels last), Linear d->4d, GELU, Linear 4d->d,
    layer scale, residual. Output channels equal input channels."""

    kernel_size: int = _kernel(7)
    mlp_ratio: float = _ratio(4.0, lo=0.25, hi=16.0)
    layer_scale: bool = True


@register("transformer")
@dataclass(frozen=True)
class TransformerBlockSpec(Spec):
    """Pre-norm ViT encoder block on tokens [N, L, D]: LN, multi-head self-attention (QKV linear,
    QK^T, softmax, AV, projection), residual, LN, MLP (D -> mlp*D -> D), residual."""

    heads: int = bounded(8, lo=1, hi=MAX_HEADS)
    mlp_ratio: float = _ratio(4.0, lo=0.25, hi=16.0)
    act: str = _act("gelu")
    qkv_bias: bool = True

    def check(self) -> list[tuple[str, str]]:
        return []  # heads | dim is checked against the input shape at expansion


@register("pool")
@dataclass(frozen=True)
class PoolSpec(Spec):
    """Max / average pooling, or global average pooling (output [N, C, 1, 1]; ``flatten`` gives [N, C])."""

    mode: str = bounded("max", choices=POOLS)
    kernel_size: int = bounded(3, lo=1, hi=MAX_KERNEL)
    stride: int = _stride(2)
    padding: int = bounded(1, lo=0, hi=MAX_KERNEL)
    flatten: bool = False

    def check(self) -> list[tuple[str, str]]:
        if self.mode != "global_avg" and 2 * self.padding > self.kernel_size:
            return [("padding", f"must be at most half of kernel_size ({self.kernel_size}), got {self.padding}")]
        return []


@register("norm")
@dataclass(frozen=True)
class NormSpec(Spec):
    """A standalone normalization: BatchNorm2d, or LayerNorm over channels (channels-first
    LayerNorm2d on [N,C,H,W], plain LayerNorm on [N, C] / tokens)."""

    norm: str = bounded("layer", choices=("batch", "layer"))


@register("linear")
@dataclass(frozen=True)
class LinearSpec(Spec):
    """Fully connected layer on [N, F] (or tokens [N, L, F]) [+ activation]."""

    out_features: int = _channels()
    bias: bool = True
    act: str = _act("none")
