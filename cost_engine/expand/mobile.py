"""Expansion of the mobile blocks: depthwise-separable, MBConv, Fused-MBConv, FasterNet, ShuffleNetV2.

Each expander emits, in execution order, exactly the ops the module of
:mod:`cost_engine.modules.mobile` runs, with the same submodule attribute names, so a trace of the
built module reproduces this list op for op. The architectures follow the reference code the
published numbers come from: torchvision ``efficientnet.py`` (MBConv, Fused-MBConv),
the official FasterNet repository (PConv block) and torchvision ``shufflenetv2.py``.
Conv-BN-act triples are the plain conv block's ops under a named ``ConvBlock`` scope, the same
class the builders instantiate (:func:`conv_bn_act`).
"""

from __future__ import annotations

import dataclasses

from cost_engine.expand.emitter import Emitter, T
from cost_engine.expand.registry import ShapeError, expander
from cost_engine.spec.blocks import (
    DepthwiseSeparableSpec,
    FasterNetBlockSpec,
    FusedMBConvSpec,
    MBConvSpec,
    ShuffleV2UnitSpec,
)


# -- channel rules shared with the builders ------------------------------------------------------
def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision/TF ``_make_divisible``: nearest multiple of ``divisor``, never 10% below ``value``."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def expanded_channels(in_channels: int, expand_ratio: float) -> int:
    """Hidden width of an (Fused-)MBConv: the input itself at ratio 1, else torchvision EfficientNet's
    ``_make_divisible(in * ratio, 8)`` (equal to ``in * ratio`` for the integer ratios on multiples of
    8 that EfficientNet and MobileNetV2 use)."""
    if expand_ratio == 1:
        return in_channels
    return make_divisible(in_channels * expand_ratio, 8)


def se_channels(in_channels: int, se_ratio: float) -> int:
    """EfficientNet's squeeze width, relative to the block *input*: ``max(1, int(in * se_ratio))``."""
    return max(1, int(in_channels * se_ratio))


def fasternet_widths(channels: int, n_div: int, mlp_ratio: float) -> tuple[int, int]:
    """(PConv channels ``c // n_div``, MLP hidden ``int(c * mlp_ratio)``), as the official code."""
    return channels // n_div, int(channels * mlp_ratio)


# -- shared pieces -------------------------------------------------------------------------------
def _require_map(x: T, kind: str) -> tuple[int, int, int, int]:
    """Every mobile block needs a feature map. (Its kernels are odd with "same" padding, so any
    map of side >= 1 fits them: no kernel-size shape check is needed.)"""
    if len(x.shape) != 4:
        raise ShapeError("kind", f"{kind} needs an [N, C, H, W] input, got rank {len(x.shape)}")
    n, c, h, w = x.shape
    return n, c, h, w


def conv_bn_act(em: Emitter, x: T, name: str, out_channels: int, kernel_size: int, stride: int = 1,
                groups: int = 1, act: str = "none") -> T:
    """A ``ConvBlock`` submodule ``name`` (the plain conv block of :mod:`cost_engine.expand.basic`
    with batch norm, odd kernel, no bias, no dilation): conv + BatchNorm2d [+ activation].

    Emitted directly rather than through a ``ConvSpec`` and ``basic.conv``: this is the hot path of
    every MBConv search space, and the trace-equivalence tests hold both to the same ``ConvBlock``.
    """
    with em.scope(name, "ConvBlock"):
        y = em.conv2d(x, out_channels, kernel_size, stride, (kernel_size - 1) // 2, 1, groups, False, name="conv")
        y = em.batch_norm(y, name="bn")
        return em.act(y, act, name="act")


def squeeze_excite(em: Emitter, x: T, squeeze: int, act: str, name: str = "se") -> T:
    """torchvision ``SqueezeExcitation``: avg pool, 1x1 reduce (bias), act, 1x1 expand (bias),
    sigmoid gate, then ``x * gate`` (a broadcast multiply in the SE module's forward)."""
    c = x.shape[1]
    with em.scope(name, "SqueezeExcite"):
        s = em.global_avg_pool(x, name="pool")
        s = em.conv2d(s, squeeze, 1, padding=0, bias=True, name="reduce")
        s = em.act(s, act, name="act")
        s = em.conv2d(s, c, 1, padding=0, bias=True, name="expand")
        s = em.act(s, "sigmoid", name="gate")
        return em.binary("mul", x, s)


def _residual(em: Emitter, shortcut: T, y: T, use: bool) -> T:
    return em.binary("add", y, shortcut) if use else y


# -- blocks --------------------------------------------------------------------------------------
@expander(DepthwiseSeparableSpec, "DepthwiseSeparable")
def dwsep(spec: DepthwiseSeparableSpec, em: Emitter, x: T) -> T:
    """MobileNetV1 / EfficientNet ``e=1`` block: dw conv-BN-act, SE (squeeze on the input width,
    the block's activation inside, sigmoid gate), pw conv-BN (act only with ``pw_act``)."""
    _, c, _, _ = _require_map(x, "dwsep")
    y = conv_bn_act(em, x, "dw", c, spec.kernel_size, spec.stride, groups=c, act=spec.act)
    if spec.se_ratio > 0:
        y = squeeze_excite(em, y, se_channels(c, spec.se_ratio), spec.act)
    y = conv_bn_act(em, y, "pw", spec.out_channels, 1, act=spec.act if spec.pw_act else "none")
    return _residual(em, x, y, spec.skip and spec.stride == 1 and c == spec.out_channels)


@expander(MBConvSpec, "MBConv")
def mbconv(spec: MBConvSpec, em: Emitter, x: T) -> T:
    _, c, _, _ = _require_map(x, "mbconv")
    hidden = expanded_channels(c, spec.expand_ratio)
    y = x
    if spec.expand_ratio != 1:
        y = conv_bn_act(em, y, "expand", hidden, 1, act=spec.act)
    y = conv_bn_act(em, y, "dw", hidden, spec.kernel_size, spec.stride, groups=hidden, act=spec.act)
    if spec.se_ratio > 0:
        y = squeeze_excite(em, y, se_channels(c, spec.se_ratio), spec.act)
    y = conv_bn_act(em, y, "project", spec.out_channels, 1)
    return _residual(em, x, y, spec.skip and spec.stride == 1 and c == spec.out_channels)


@expander(FusedMBConvSpec, "FusedMBConv")
def fused_mbconv(spec: FusedMBConvSpec, em: Emitter, x: T) -> T:
    """torchvision ``FusedMBConv``: at ratio 1 a single kxk conv-BN-act to the output width, else
    a kxk expand conv-BN-act and a 1x1 project conv-BN; SE (timm ``EdgeResidual``) after the kxk conv,
    its squeeze relative to the block input as in MBConv."""
    _, c, _, _ = _require_map(x, "fused_mbconv")
    if spec.expand_ratio == 1:
        y = conv_bn_act(em, x, "conv", spec.out_channels, spec.kernel_size, spec.stride, act=spec.act)
        if spec.se_ratio > 0:
            y = squeeze_excite(em, y, se_channels(c, spec.se_ratio), spec.act)
    else:
        hidden = expanded_channels(c, spec.expand_ratio)
        y = conv_bn_act(em, x, "expand", hidden, spec.kernel_size, spec.stride, act=spec.act)
        if spec.se_ratio > 0:
            y = squeeze_excite(em, y, se_channels(c, spec.se_ratio), spec.act)
        y = conv_bn_act(em, y, "project", spec.out_channels, 1)
    return _residual(em, x, y, spec.skip and spec.stride == 1 and c == spec.out_channels)


def _write_into(em: Emitter, src: T, dst: T) -> T:
    """``dst[...] = src``: a ``copy`` of ``src`` whose output is (a slice of) ``dst``'s storage."""
    em.op("copy", [src], [src.shape])
    em.ops[-1] = dataclasses.replace(em.ops[-1], output_ids=(dst.id,))
    return dst


@expander(FasterNetBlockSpec, "FasterNetBlock")
def fasternet(spec: FasterNetBlockSpec, em: Emitter, x: T) -> T:
    """Official FasterNet ``MLPBlock``: ``x + mlp(spatial_mixing(x))``; DropPath and the disabled
    layer scale are identities at inference and emit nothing."""
    n, c, h, w = _require_map(x, "fasternet")
    cp, hidden = fasternet_widths(c, spec.n_div, spec.mlp_ratio)
    if cp < 1:
        raise ShapeError("n_div", f"{spec.n_div} leaves no channel of {c} for the partial conv")
    with em.scope("spatial_mixing", "PartialConv"):
        if spec.forward == "split_cat":
            x1, x2 = em.split(x, [cp, c - cp])
            x1 = em.conv2d(x1, cp, spec.kernel_size, name="partial_conv3")
            y = em.concat([x1, x2])
        else:  # "slicing": clone, convolve the first channels, write them back
            y = em.copy(x)
            part = em.conv2d(em.view(y, (n, cp, h, w)), cp, spec.kernel_size, name="partial_conv3")
            y = _write_into(em, part, y)
    with em.scope("mlp", "Sequential"):
        z = em.conv2d(y, hidden, 1, padding=0, name="0")
        z = em.batch_norm(z, name="1")
        z = em.act(z, spec.act, name="2")
        z = em.conv2d(z, c, 1, padding=0, name="3")
    return em.binary("add", x, z)


def _branch(em: Emitter, x: T, name: str, out: int, k: int, stride: int, downsample_input: bool) -> T:
    """torchvision ShuffleNetV2 branches as ``nn.Sequential`` with its indices.

    ``branch1`` (downsampling only): dw kxk s-BN, 1x1-BN-ReLU. ``branch2``: 1x1-BN-ReLU,
    dw kxk s-BN, 1x1-BN-ReLU.
    """
    c = x.shape[1]
    pad = (k - 1) // 2
    with em.scope(name, "Sequential"):
        if downsample_input:
            y = em.conv2d(x, c, k, stride, pad, groups=c, name="0")
            y = em.batch_norm(y, name="1")
            y = em.conv2d(y, out, 1, padding=0, name="2")
            y = em.batch_norm(y, name="3")
            return em.act(y, "relu", name="4")
        y = em.conv2d(x, out, 1, padding=0, name="0")
        y = em.batch_norm(y, name="1")
        y = em.act(y, "relu", name="2")
        y = em.conv2d(y, out, k, stride, pad, groups=out, name="3")
        y = em.batch_norm(y, name="4")
        y = em.conv2d(y, out, 1, padding=0, name="5")
        y = em.batch_norm(y, name="6")
        return em.act(y, "relu", name="7")


def channel_shuffle(em: Emitter, x: T, groups: int = 2) -> T:
    """``view(n, g, c/g, h, w)``, ``transpose(1, 2)``, ``contiguous()`` (the one copy), ``view(n, c, h, w)``."""
    n, c, h, w = x.shape
    v = em.view(x, (n, c // groups, groups, h, w))  # the transposed view the copy reads
    y = em.copy(v)
    return em.view(y, (n, c, h, w))


@expander(ShuffleV2UnitSpec, "ShuffleV2Unit")
def shufflenet_v2(spec: ShuffleV2UnitSpec, em: Emitter, x: T) -> T:
    _, c, _, _ = _require_map(x, "shufflenet_v2")
    half = spec.out_channels // 2
    if spec.stride == 1:
        if c != spec.out_channels:
            raise ShapeError("out_channels", f"a stride-1 unit keeps its width: must equal the input channels "
                                             f"({c}), got {spec.out_channels}")
        x1, x2 = em.split(x, [half, half])
        y = em.concat([x1, _branch(em, x2, "branch2", half, spec.kernel_size, 1, False)])
    else:
        b1 = _branch(em, x, "branch1", half, spec.kernel_size, spec.stride, True)
        b2 = _branch(em, x, "branch2", half, spec.kernel_size, spec.stride, False)
        y = em.concat([b1, b2])
    return channel_shuffle(em, y)
