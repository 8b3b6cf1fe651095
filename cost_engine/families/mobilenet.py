"""MobileNetV2 (torchvision semantics) at any width multiplier.

Channels are ``_make_divisible(c * width_mult, 8)``; the last conv keeps 1280 channels unless the
multiplier exceeds 1. Blocks are MBConv without SE, ReLU6, expansion from the ``(t, c, n, s)``
table; the first block of each row carries the stride. The head is 1x1 conv-BN-ReLU6, global
average pool and a linear classifier (dropout is an identity at inference).
"""

from __future__ import annotations

from cost_engine.expand.mobile import make_divisible
from cost_engine.families.efficientnet import checked
from cost_engine.families.registry import builtin
from cost_engine.spec.base import FieldError, SpecError
from cost_engine.spec.blocks import ConvSpec, LinearSpec, MBConvSpec, PoolSpec
from cost_engine.spec.network import NetworkSpec

#: (expand ratio t, channels c, repeats n, first stride s) of the paper's Table 2
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
MAX_WIDTH_MULT = 8.0


def mobilenet_v2(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000,
                 round_nearest: int = 8) -> NetworkSpec:
    errors = []
    if not 0 < width_mult <= MAX_WIDTH_MULT:
        errors.append(FieldError("width_mult", f"must be in (0, {MAX_WIDTH_MULT}], got {width_mult}"))
    if round_nearest < 1:
        errors.append(FieldError("round_nearest", f"must be >= 1, got {round_nearest}"))
    if errors:
        raise SpecError(errors)
    stem_channels = make_divisible(32 * width_mult, round_nearest)
    last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
    stages = []
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        out = make_divisible(c * width_mult, round_nearest)
        stages.append(tuple(MBConvSpec(out_channels=out, expand_ratio=float(t), kernel_size=3,
                                       stride=s if i == 0 else 1, se_ratio=0.0, act="relu6")
                            for i in range(n)))
    return checked(NetworkSpec(
        stem=(ConvSpec(out_channels=stem_channels, kernel_size=3, stride=2, act="relu6"),),
        stages=tuple(stages),
        head=(ConvSpec(out_channels=last_channel, kernel_size=1, act="relu6"),
              PoolSpec(mode="global_avg", flatten=True),
              LinearSpec(out_features=num_classes)),
        resolution=resolution,
    ))


@builtin("mobilenet_v2")
def _mobilenet_v2() -> NetworkSpec:
    return mobilenet_v2(1.0)
