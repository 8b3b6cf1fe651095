"""Expansion of the residual and transformer blocks: ResNet basic/bottleneck, RegNet X/Y, ConvNeXt,
the pre-norm ViT encoder block, and the token glue around it.

Each expander emits, in execution order, exactly the ops the module of the same class name in
:mod:`cost_engine.modules.residual` runs, with the same submodule attribute names, so a trace of
the built module reproduces this list op for op. The architectures follow the reference code the
published numbers come from: torchvision ``resnet.py`` (v1.5, stride on the 3x3), torchvision
``regnet.py`` (``ResBottleneckBlock``), torchvision ``convnext.py`` (``CNBlock``) and timm's
``vision_transformer.py`` (``Block``/``Attention`` on the non-fused path, so the attention
matmuls are visible ops).

Copies. A view (reshape, permute, transpose, select) moves no data; the copies the real forward
makes are emitted as ``copy`` ops so memory access is honest, and only those:

* ConvNeXt: neither permute copies. ``LayerNorm`` writes a contiguous channels-last output
  whatever the stride of its input, so both Linears take their flattened (view) path; the
  permute back yields a channels-last view that the layer-scale multiply and the residual add
  consume in place.
* Attention (timm layout ``qkv.reshape(N, L, 3, H, d).permute(2, 0, 3, 1, 4)``): ``q @ k^T``
  and ``attn @ v`` fold the batch dims with ``reshape``, which must copy ``q``, ``k^T`` and ``v``
  when both N > 1 and H > 1 (the N and H strides of a qkv slice cannot merge); merging the heads
  back, ``transpose(1, 2).reshape(N, L, D)``, copies when H > 1, L > 1 and head_dim > 1 (size-1
  dims never block a view). So the op list of a transformer block at batch 1 differs from that
  at batch 2 by three copies. With head_dim 1 (and batch > 1) the merged view is not contiguous
  and ``proj``'s ``aten.linear`` copies it internally; that copy is part of the ``linear`` op
  here, as in the tracer, which records ``aten.linear`` whole.
"""

from __future__ import annotations

from cost_engine.expand.emitter import Emitter, T
from cost_engine.expand.mobile import conv_bn_act, squeeze_excite
from cost_engine.expand.registry import ShapeError, expander
from cost_engine.ops import make_attrs
from cost_engine.spec.blocks import (
    ConvNeXtBlockSpec,
    RegNetBlockSpec,
    ResNetBasicSpec,
    ResNetBottleneckSpec,
    TransformerBlockSpec,
)
from cost_engine.spec.tokens import PatchEmbedSpec, TokenPoolSpec, TokensSpec


# -- width rules shared with the builders ------------------------------------------------------
def hidden_features(dim: int, mlp_ratio: float) -> int:
    """MLP width of a ConvNeXt/ViT block: timm's ``int(dim * mlp_ratio)`` (at least 1)."""
    return max(1, int(dim * mlp_ratio))


def regnet_widths(in_channels: int, spec: RegNetBlockSpec) -> tuple[int, int, int]:
    """(bottleneck width, groups, SE squeeze) of a RegNet block, as torchvision/pycls:
    ``w_b = int(round(w_out * b))``, ``groups = w_b // min(group_width, w_b)`` (the spec's check
    guarantees it divides), squeeze ``int(round(w_in * se_ratio))`` (at least 1; 0 = no SE)."""
    w_b = round(spec.out_channels * spec.bottleneck_ratio)
    groups = w_b // min(spec.group_width, w_b) if w_b > 0 else 0
    squeeze = max(1, round(in_channels * spec.se_ratio)) if spec.se_ratio > 0 else 0
    return w_b, groups, squeeze


def needs_projection(in_channels: int, out_channels: int, stride: int) -> bool:
    """The shortcut is a 1x1 conv-BN when the block changes the shape, the identity otherwise."""
    return stride != 1 or in_channels != out_channels


def attention_copies(n: int, length: int, heads: int, head_dim: int) -> tuple[bool, bool]:
    """(copy q, k^T and v before the matmuls; copy when merging heads) — see the module docstring."""
    return n > 1 and heads > 1, heads > 1 and length > 1 and head_dim > 1


# -- shared checks ------------------------------------------------------------------------------
def _require_map(x: T, kind: str) -> tuple[int, int, int, int]:
    if len(x.shape) != 4:
        raise ShapeError("kind", f"{kind} needs an [N, C, H, W] input, got rank {len(x.shape)}")
    n, c, h, w = x.shape
    return n, c, h, w


def _require_tokens(x: T, kind: str) -> tuple[int, int, int]:
    if len(x.shape) != 3:
        raise ShapeError("kind", f"{kind} needs tokens [N, L, D], got rank {len(x.shape)}")
    n, length, d = x.shape
    return n, length, d


# -- ResNet -------------------------------------------------------------------------------------
@expander(ResNetBasicSpec, "ResNetBasicBlock")
def resnet_basic(spec: ResNetBasicSpec, em: Emitter, x: T) -> T:
    """torchvision ``BasicBlock``: 3x3 (stride)-BN-ReLU, 3x3-BN, shortcut, add, ReLU."""
    _, c, _, _ = _require_map(x, "resnet_basic")
    out = spec.out_channels
    y = conv_bn_act(em, x, "conv1", out, 3, spec.stride, act="relu")
    y = conv_bn_act(em, y, "conv2", out, 3)
    shortcut = conv_bn_act(em, x, "downsample", out, 1, spec.stride) if needs_projection(c, out, spec.stride) else x
    y = em.binary("add", y, shortcut)
    return em.act(y, "relu", name="relu")


@expander(ResNetBottleneckSpec, "ResNetBottleneck")
def resnet_bottleneck(spec: ResNetBottleneckSpec, em: Emitter, x: T) -> T:
    """torchvision v1.5 ``Bottleneck``: 1x1-BN-ReLU, 3x3 (stride, groups)-BN-ReLU, 1x1-BN to
    ``width * expansion``, shortcut (computed after the main path, as torchvision), add, ReLU."""
    _, c, _, _ = _require_map(x, "resnet_bottleneck")
    out = spec.width * spec.expansion
    y = conv_bn_act(em, x, "conv1", spec.width, 1, act="relu")
    y = conv_bn_act(em, y, "conv2", spec.width, 3, spec.stride, groups=spec.groups, act="relu")
    y = conv_bn_act(em, y, "conv3", out, 1)
    shortcut = conv_bn_act(em, x, "downsample", out, 1, spec.stride) if needs_projection(c, out, spec.stride) else x
    y = em.binary("add", y, shortcut)
    return em.act(y, "relu", name="relu")


# -- RegNet -------------------------------------------------------------------------------------
@expander(RegNetBlockSpec, "RegNetBlock")
def regnet(spec: RegNetBlockSpec, em: Emitter, x: T) -> T:
    """torchvision ``ResBottleneckBlock``: ``proj(x) + f(x)`` (projection first, as Python evaluates
    it), then ReLU; ``f`` = 1x1-BN-ReLU, 3x3 group (stride)-BN-ReLU, [SE with ReLU], 1x1-BN."""
    _, c, _, _ = _require_map(x, "regnet")
    w_b, groups, squeeze = regnet_widths(c, spec)
    if w_b < 1:
        raise ShapeError("bottleneck_ratio", f"leaves no bottleneck channel of {spec.out_channels}")
    out = spec.out_channels
    shortcut = conv_bn_act(em, x, "proj", out, 1, spec.stride) if needs_projection(c, out, spec.stride) else x
    with em.scope("f", "Sequential"):
        y = conv_bn_act(em, x, "a", w_b, 1, act="relu")
        y = conv_bn_act(em, y, "b", w_b, 3, spec.stride, groups=groups, act="relu")
        if squeeze:
            y = squeeze_excite(em, y, squeeze, "relu")
        y = conv_bn_act(em, y, "c", out, 1)
    y = em.binary("add", shortcut, y)
    return em.act(y, "relu", name="act")


# -- ConvNeXt -----------------------------------------------------------------------------------
@expander(ConvNeXtBlockSpec, "ConvNeXtBlock")
def convnext(spec: ConvNeXtBlockSpec, em: Emitter, x: T) -> T:
    """torchvision ``CNBlock``: depthwise kxk (bias), permute to channels-last (view), LayerNorm
    (eps 1e-6), Linear d->hidden, GELU, Linear hidden->d, permute back (view), ``layer_scale * y``
    (a learnable [d, 1, 1] operand), ``y + x``. Stochastic depth is the identity at inference."""
    n, c, h, w = _require_map(x, "convnext")
    hidden = hidden_features(c, spec.mlp_ratio)
    y = em.conv2d(x, c, spec.kernel_size, 1, spec.kernel_size // 2, groups=c, bias=True, name="dwconv")
    y = em.view(y, (n, h, w, c))
    y = em.layer_norm(y, name="norm")
    y = em.linear(y, hidden, name="pwconv1")
    y = em.act(y, "gelu", name="act")
    y = em.linear(y, c, name="pwconv2")
    y = em.view(y, (n, c, h, w), contiguous=False)  # permuted back: channels-last in memory
    if spec.layer_scale:
        y = em.binary("mul", y, weight=(c, 1, 1))
    return em.binary("add", y, x)


# -- transformer --------------------------------------------------------------------------------
@expander(TransformerBlockSpec, "TransformerBlock")
def transformer(spec: TransformerBlockSpec, em: Emitter, x: T) -> T:
    """timm ViT ``Block``: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))`` (LayerNorm eps 1e-6).

    Attention, written out: qkv Linear, reshape/permute into q, k, v (views), ``q @ k^T``,
    ``* head_dim ** -0.5``, softmax, ``@ v``, merge heads, proj Linear.
    """
    n, length, d = _require_tokens(x, "transformer")
    if d % spec.heads:
        raise ShapeError("heads", f"must divide the token dim ({d}), got {spec.heads}")
    heads = spec.heads
    hd = d // heads
    copy_qkv, copy_merge = attention_copies(n, length, heads, hd)
    y = em.layer_norm(x, name="norm1")
    with em.scope("attn", "Attention"):
        qkv = em.linear(y, 3 * d, bias=spec.qkv_bias, name="qkv")
        q = em.view(qkv, (n, heads, length, hd))
        kt = em.view(qkv, (n, heads, hd, length))
        v = em.view(qkv, (n, heads, length, hd))
        if copy_qkv:
            q, kt = em.copy(q), em.copy(kt)
        a = em.matmul(q, kt)
        a = em.binary("mul", a)  # the 1/sqrt(head_dim) scale, a Python scalar
        a = em.softmax(a, -1)
        if copy_qkv:
            v = em.copy(v)
        o = em.view(em.matmul(a, v), (n, length, heads, hd))  # transpose(1, 2)
        if copy_merge:
            o = em.copy(o)
        o = em.linear(em.view(o, (n, length, d)), d, name="proj")
    x = em.binary("add", x, o)
    y = em.layer_norm(x, name="norm2")
    with em.scope("mlp", "Mlp"):
        y = em.linear(y, hidden_features(d, spec.mlp_ratio), name="fc1")
        y = em.act(y, spec.act, name="act")
        y = em.linear(y, d, name="fc2")
    return em.binary("add", x, y)


# -- patches and tokens -------------------------------------------------------------------------
@expander(PatchEmbedSpec, "PatchEmbed")
def patch_embed(spec: PatchEmbedSpec, em: Emitter, x: T) -> T:
    _, _, h, w = _require_map(x, "patch_embed")
    p = spec.patch_size
    if h < p or w < p:
        raise ShapeError("patch_size", f"{p} exceeds the input ({h}x{w})")
    return em.conv2d(x, spec.out_channels, p, p, 0, bias=spec.bias, name="proj")


@expander(TokensSpec, "Tokens")
def tokens(spec: TokensSpec, em: Emitter, x: T) -> T:
    """``flatten(2).transpose(1, 2)`` (a view), ``cat([cls_token.expand(N, -1, -1), x], 1)``,
    ``+ pos_embed``; the class token and the position embedding are learnable operands."""
    n, c, h, w = _require_map(x, "tokens")
    length = h * w
    t = em.view(x, (n, length, c))
    if spec.class_token:
        length += 1
        t = em.op("concat", [t], [(n, length, c)], weights=[(1, 1, c)], attrs=make_attrs(dim=1))[0]
    if spec.pos_embed:
        t = em.binary("add", t, weight=(1, length, c))
    return t


@expander(TokenPoolSpec, "TokenPool")
def token_pool(spec: TokenPoolSpec, em: Emitter, x: T) -> T:
    n, _, d = _require_tokens(x, "token_pool")
    if spec.mode == "cls":
        return em.view(x, (n, d))  # x[:, 0]
    return em.mean(x, (1,))
