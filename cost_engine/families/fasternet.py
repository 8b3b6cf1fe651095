"""FasterNet (official repository semantics): T0, T1, T2, S, M, L and any configuration.

PatchEmbed (4x4 s4 conv, no bias, BN), four stages of FasterNet blocks (PConv on the first
``dim // n_div`` channels, 1x1 ``dim -> mlp_ratio * dim``-BN-act, 1x1 back, residual) with
PatchMerging (2x2 s2 conv ``d -> 2d``, no bias, BN) before stages 2-4, then the head
``AdaptiveAvgPool2d(1)``, 1x1 conv ``8C -> 1280`` (no bias), act, linear classifier.
"""

from __future__ import annotations

from cost_engine.families.efficientnet import checked
from cost_engine.families.registry import builtin
from cost_engine.spec.base import ACTIVATIONS, MAX_CHANNELS, FieldError, SpecError, canonical_act, validate
from cost_engine.spec.blocks import ConvSpec, FasterNetBlockSpec, LinearSpec, PoolSpec
from cost_engine.spec.network import NetworkSpec

#: name -> (embed_dim, depths, act) from the official configs
PRESETS: dict[str, tuple[int, tuple[int, ...], str]] = {
    "fasternet_t0": (40, (1, 2, 8, 2), "gelu"),
    "fasternet_t1": (64, (1, 2, 8, 2), "gelu"),
    "fasternet_t2": (96, (1, 2, 8, 2), "relu"),
    "fasternet_s": (128, (1, 2, 13, 2), "relu"),
    "fasternet_m": (144, (3, 4, 18, 3), "relu"),
    "fasternet_l": (192, (3, 4, 18, 3), "relu"),
}


def fasternet(embed_dim: int = 40, depths: tuple[int, ...] = (1, 2, 8, 2), n_div: int = 4, mlp_ratio: float = 2.0,
              act: str = "relu", kernel_size: int = 3, forward: str = "split_cat", patch_size: int = 4,
              merge_size: int = 2, feature_dim: int = 1280, num_classes: int = 1000,
              resolution: int = 224) -> NetworkSpec:
    errors = []
    if not depths:
        errors.append(FieldError("depths", "needs at least one stage"))
    errors.extend(FieldError(f"depths[{i}]", f"must be >= 1, got {d}") for i, d in enumerate(depths) if d < 1)
    widest = embed_dim * 2 ** max(len(depths) - 1, 0)
    if embed_dim < 1 or widest > MAX_CHANNELS:
        errors.append(FieldError("embed_dim", f"must be >= 1 with the last stage ({widest}) at most {MAX_CHANNELS}"))
    if not 1 <= n_div <= embed_dim:
        errors.append(FieldError("n_div", f"must be in [1, embed_dim={embed_dim}], got {n_div}"))
    if canonical_act(act) not in ACTIVATIONS:
        errors.append(FieldError("act", f"must be one of {', '.join(ACTIVATIONS)}; got {act!r}"))
    block = FasterNetBlockSpec(n_div=n_div, mlp_ratio=mlp_ratio, kernel_size=kernel_size, act=act, forward=forward)
    # the block's fields are this function's parameters of the same names: report them once
    errors.extend(e for e in validate(block) if e.path not in {x.path for x in errors})
    if errors:
        raise SpecError(errors)
    stages = []
    for i, depth in enumerate(depths):
        merge = () if i == 0 else (ConvSpec(out_channels=embed_dim * 2**i, kernel_size=merge_size,
                                            stride=merge_size, act="none"),)
        stages.append(merge + (block,) * depth)
    return checked(NetworkSpec(
        stem=(ConvSpec(out_channels=embed_dim, kernel_size=patch_size, stride=patch_size, act="none"),),
        stages=tuple(stages),
        head=(PoolSpec(mode="global_avg"),
              ConvSpec(out_channels=feature_dim, kernel_size=1, norm="none", act=act),
              LinearSpec(out_features=num_classes)),
        resolution=resolution,
    ))


def _preset(name: str) -> None:
    embed_dim, depths, act = PRESETS[name]
    builtin(name)(lambda: fasternet(embed_dim, depths, act=act))


for _name in PRESETS:
    _preset(_name)
