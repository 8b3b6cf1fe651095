"""ResNet (torchvision v1.5) from depths, widths and block type; resnet18/34/50/101/152 presets.

Stem 7x7 stride-2 conv-BN-ReLU and 3x3 stride-2 max pool; four stages whose first block carries
the stride (1 for the first stage, 2 after); global average pool and a linear classifier.
``widths`` are the 3x3 convs' channels: a bottleneck stage outputs ``width * 4``, a basic stage
``width``. ``groups`` > 1 gives ResNeXt-style bottlenecks.
"""

from __future__ import annotations

from collections.abc import Sequence

from cost_engine.families.registry import builtin
from cost_engine.spec.base import MAX_CHANNELS, MAX_REPEATS, FieldError, Spec, SpecError, validate
from cost_engine.spec.blocks import ConvSpec, LinearSpec, PoolSpec, ResNetBasicSpec, ResNetBottleneckSpec
from cost_engine.spec.network import NetworkSpec

BLOCKS = ("basic", "bottleneck")


def resnet(depths: Sequence[int], widths: Sequence[int] = (64, 128, 256, 512), block: str = "bottleneck", *,
           groups: int = 1, stem_width: int = 64, num_classes: int = 1000, resolution: int = 224) -> NetworkSpec:
    """A ResNet network spec; raises :class:`SpecError` naming every bad argument."""
    errors: list[FieldError] = []
    if block not in BLOCKS:
        errors.append(FieldError("block", f"must be one of {', '.join(BLOCKS)}; got {block!r}"))
    if not depths:
        errors.append(FieldError("depths", "needs at least one stage"))
    if len(widths) != len(depths):
        errors.append(FieldError("widths", f"needs one width per stage ({len(depths)}), got {len(widths)}"))
    for i, d in enumerate(depths):
        if not isinstance(d, int) or not 1 <= d <= MAX_REPEATS:
            errors.append(FieldError(f"depths[{i}]", f"must be an integer in [1, {MAX_REPEATS}], got {d!r}"))
    for i, w in enumerate(widths):
        if not isinstance(w, int) or not 1 <= w <= MAX_CHANNELS // 4:
            errors.append(FieldError(f"widths[{i}]", f"must be an integer in [1, {MAX_CHANNELS // 4}], got {w!r}"))
    if errors:
        raise SpecError(errors)
    stages: list[tuple[Spec, ...]] = []
    for s, (depth, width) in enumerate(zip(depths, widths, strict=True)):
        blocks: list[Spec] = []
        for i in range(depth):
            stride = 2 if s > 0 and i == 0 else 1
            if block == "bottleneck":
                blocks.append(ResNetBottleneckSpec(width=width, stride=stride, groups=groups))
            else:
                blocks.append(ResNetBasicSpec(out_channels=width, stride=stride))
        stages.append(tuple(blocks))
    spec = NetworkSpec(
        stem=(ConvSpec(out_channels=stem_width, kernel_size=7, stride=2),
              PoolSpec(mode="max", kernel_size=3, stride=2, padding=1)),
        stages=tuple(stages),
        head=(PoolSpec(mode="global_avg", flatten=True), LinearSpec(out_features=num_classes)),
        resolution=resolution,
    )
    errors = validate(spec)
    if errors:
        raise SpecError(errors)
    return spec


@builtin("resnet18")
def _resnet18() -> NetworkSpec:
    return resnet((2, 2, 2, 2), block="basic")


@builtin("resnet34")
def _resnet34() -> NetworkSpec:
    return resnet((3, 4, 6, 3), block="basic")


@builtin("resnet50")
def _resnet50() -> NetworkSpec:
    return resnet((3, 4, 6, 3))


@builtin("resnet101")
def _resnet101() -> NetworkSpec:
    return resnet((3, 4, 23, 3))


@builtin("resnet152")
def _resnet152() -> NetworkSpec:
    return resnet((3, 8, 36, 3))
