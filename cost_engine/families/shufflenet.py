"""ShuffleNetV2 (torchvision semantics): x0.5, x1.0, x1.5, x2.0 and any channel table.

Stem 3x3 s2 conv-BN-ReLU and 3x3 s2 max pool; three stages whose first unit downsamples;
1x1 conv-BN-ReLU to the last width; global average pool; linear classifier.
"""

from __future__ import annotations

from cost_engine.families.efficientnet import checked
from cost_engine.families.registry import builtin
from cost_engine.spec.base import FieldError, SpecError
from cost_engine.spec.blocks import ConvSpec, LinearSpec, PoolSpec, ShuffleV2UnitSpec
from cost_engine.spec.network import NetworkSpec

STAGES_REPEATS: tuple[int, int, int] = (4, 8, 4)
#: multiplier name -> stages_out_channels (stem, three stages, last conv), from the paper / torchvision
CHANNELS: dict[str, tuple[int, int, int, int, int]] = {
    "x0_5": (24, 48, 96, 192, 1024),
    "x1_0": (24, 116, 232, 464, 1024),
    "x1_5": (24, 176, 352, 704, 1024),
    "x2_0": (24, 244, 488, 976, 2048),
}


def shufflenet_v2(stages_out_channels: tuple[int, ...] = CHANNELS["x1_0"],
                  stages_repeats: tuple[int, ...] = STAGES_REPEATS, resolution: int = 224,
                  num_classes: int = 1000) -> NetworkSpec:
    errors = []
    if len(stages_out_channels) != len(stages_repeats) + 2:
        errors.append(FieldError("stages_out_channels",
                                 f"needs {len(stages_repeats) + 2} entries (stem, one per stage, last conv), "
                                 f"got {len(stages_out_channels)}"))
    errors.extend(FieldError(f"stages_repeats[{i}]", f"must be >= 1, got {r}")
                  for i, r in enumerate(stages_repeats) if r < 1)
    errors.extend(FieldError(f"stages_out_channels[{i}]", f"a ShuffleNetV2 stage width must be even, got {c}")
                  for i, c in enumerate(stages_out_channels[1:-1], start=1) if c % 2)
    if errors:
        raise SpecError(errors)
    stem_c, *stage_cs, last_c = stages_out_channels
    stages = tuple(
        tuple(ShuffleV2UnitSpec(out_channels=c, stride=2 if i == 0 else 1) for i in range(n))
        for c, n in zip(stage_cs, stages_repeats, strict=True)
    )
    return checked(NetworkSpec(
        stem=(ConvSpec(out_channels=stem_c, kernel_size=3, stride=2, act="relu"),
              PoolSpec(mode="max", kernel_size=3, stride=2, padding=1)),
        stages=stages,
        head=(ConvSpec(out_channels=last_c, kernel_size=1, act="relu"),
              PoolSpec(mode="global_avg", flatten=True),
              LinearSpec(out_features=num_classes)),
        resolution=resolution,
    ))


def _preset(multiplier: str) -> None:
    builtin(f"shufflenet_v2_{multiplier}")(lambda: shufflenet_v2(CHANNELS[multiplier]))


for _m in CHANNELS:
    _preset(_m)
