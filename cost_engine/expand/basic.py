"""Expansion of the plain blocks: conv, pooling, standalone norm, linear."""

from __future__ import annotations

from cost_engine.expand.emitter import Emitter, T
from cost_engine.expand.registry import ShapeError, expander
from cost_engine.spec.blocks import ConvSpec, LinearSpec, NormSpec, PoolSpec


def conv_padding(kernel_size: int, dilation: int) -> int:
    """"Same"-style padding for odd kernels, none for even (patchify) kernels."""
    return dilation * (kernel_size - 1) // 2 if kernel_size % 2 else 0


def norm2d(em: Emitter, x: T, norm: str) -> T:
    """BatchNorm2d, or a channels-first LayerNorm2d (run channels-last on a permuted view)."""
    if norm == "batch":
        return em.batch_norm(x, name="bn")
    if norm == "layer":
        n, c, h, w = x.shape
        y = em.layer_norm(em.view(x, (n, h, w, c)), name="norm", module_type="LayerNorm2d")
        return em.view(y, (n, c, h, w), contiguous=False)  # permuted back: channels-last in memory
    return x


@expander(ConvSpec, "ConvBlock")
def conv(spec: ConvSpec, em: Emitter, x: T) -> T:
    if len(x.shape) != 4:
        raise ShapeError("kind", f"conv needs an [N, C, H, W] input, got rank {len(x.shape)}")
    c = x.shape[1]
    if c % spec.groups:
        raise ShapeError("groups", f"must divide the input channels ({c}), got {spec.groups}")
    eff = spec.dilation * (spec.kernel_size - 1) + 1
    pad = conv_padding(spec.kernel_size, spec.dilation)
    if x.shape[2] + 2 * pad < eff or x.shape[3] + 2 * pad < eff:
        raise ShapeError("kernel_size", f"{spec.kernel_size} (dilated {eff}) exceeds the padded input")
    y = em.conv2d(x, spec.out_channels, spec.kernel_size, spec.stride, pad, spec.dilation, spec.groups,
                  spec.bias)
    y = norm2d(em, y, spec.norm)
    return em.act(y, spec.act)


@expander(PoolSpec, "PoolBlock")
def pool(spec: PoolSpec, em: Emitter, x: T) -> T:
    if len(x.shape) != 4:
        raise ShapeError("kind", f"pooling needs an [N, C, H, W] input, got rank {len(x.shape)}")
    if spec.mode == "global_avg":
        y = em.global_avg_pool(x)
        return em.flatten(y) if spec.flatten else y
    if x.shape[2] + 2 * spec.padding < spec.kernel_size or x.shape[3] + 2 * spec.padding < spec.kernel_size:
        raise ShapeError("kernel_size", f"{spec.kernel_size} exceeds the padded input")
    fn = em.max_pool2d if spec.mode == "max" else em.avg_pool2d
    y = fn(x, spec.kernel_size, spec.stride, spec.padding)
    return em.flatten(y) if spec.flatten else y


@expander(NormSpec, "NormBlock")
def norm(spec: NormSpec, em: Emitter, x: T) -> T:
    if len(x.shape) == 4:
        return norm2d(em, x, spec.norm)
    if spec.norm == "batch":
        raise ShapeError("norm", "batch norm here needs an [N, C, H, W] input")
    return em.layer_norm(x, name="norm")


@expander(LinearSpec, "LinearBlock")
def linear(spec: LinearSpec, em: Emitter, x: T) -> T:
    if len(x.shape) == 4:  # [N, C, 1, 1] after global pooling, or any map: torch.flatten(x, 1)
        x = em.flatten(x)
    y = em.linear(x, spec.out_features, spec.bias)
    return em.act(y, spec.act)
