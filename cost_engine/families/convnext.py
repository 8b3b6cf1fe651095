"""ConvNeXt (Liu et al. 2022, torchvision ``convnext.py``) from depths and dims; tiny/small/base/large.

Stem: 4x4 stride-4 conv (bias) + channels-first LayerNorm. Before stages 2-4: LayerNorm + 2x2
stride-2 conv (bias), written as a standalone norm block followed by a conv block. Blocks: the
ConvNeXt block (7x7 depthwise, LayerNorm, MLP x4, layer scale, residual). Head: global average
pool, LayerNorm, Linear. All LayerNorms use eps 1e-6; stochastic depth is an identity at inference.
"""

from __future__ import annotations

from collections.abc import Sequence

from cost_engine.families.registry import builtin
from cost_engine.spec.base import FieldError, Spec, SpecError, validate
from cost_engine.spec.blocks import ConvNeXtBlockSpec, ConvSpec, LinearSpec, NormSpec, PoolSpec
from cost_engine.spec.network import NetworkSpec


def convnext(depths: Sequence[int], dims: Sequence[int], *, kernel_size: int = 7, mlp_ratio: float = 4.0,
             layer_scale: bool = True, num_classes: int = 1000, resolution: int = 224) -> NetworkSpec:
    """A ConvNeXt network spec; raises :class:`SpecError` naming every bad argument."""
    if not depths or len(dims) != len(depths):
        raise SpecError([FieldError("dims", f"needs one dim per stage ({len(depths)}), got {len(dims)}")])
    block = ConvNeXtBlockSpec(kernel_size=kernel_size, mlp_ratio=float(mlp_ratio), layer_scale=layer_scale)
    stages: list[tuple[Spec, ...]] = []
    for s, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
        downsample: tuple[Spec, ...] = ()
        if s > 0:
            downsample = (NormSpec(norm="layer"),
                          ConvSpec(out_channels=dim, kernel_size=2, stride=2, bias=True, norm="none", act="none"))
        stages.append(downsample + (block,) * depth)
    spec = NetworkSpec(
        stem=(ConvSpec(out_channels=dims[0], kernel_size=4, stride=4, bias=True, norm="layer", act="none"),),
        stages=tuple(stages),
        head=(PoolSpec(mode="global_avg", flatten=True), NormSpec(norm="layer"),
              LinearSpec(out_features=num_classes)),
        resolution=resolution,
    )
    errors = validate(spec)
    for i, d in enumerate(depths):
        if not isinstance(d, int) or d < 0:
            errors.append(FieldError(f"depths[{i}]", f"must be a non-negative integer, got {d!r}"))
    if errors:
        raise SpecError(errors)
    return spec


@builtin("convnext_tiny")
def _convnext_tiny() -> NetworkSpec:
    return convnext((3, 3, 9, 3), (96, 192, 384, 768))


@builtin("convnext_small")
def _convnext_small() -> NetworkSpec:
    return convnext((3, 3, 27, 3), (96, 192, 384, 768))


@builtin("convnext_base")
def _convnext_base() -> NetworkSpec:
    return convnext((3, 3, 27, 3), (128, 256, 512, 1024))


@builtin("convnext_large")
def _convnext_large() -> NetworkSpec:
    return convnext((3, 3, 27, 3), (192, 384, 768, 1536))
