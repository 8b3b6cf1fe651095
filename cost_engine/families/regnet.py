"""RegNet X / Y (Radosavovic et al., "Designing Network Design Spaces") from (w0, wa, wm, depth,
group width, bottleneck ratio, SE ratio); the X/Y 400MF ... 3.2GF presets.

Widths follow the paper's quantized linear rule: ``u_j = w0 + wa * j``, ``s_j = round(log(u_j /
w0) / log(wm))``, ``w_j = round(w0 * wm ** s_j / 8) * 8``; consecutive equal widths form a stage.
Then each stage's bottleneck width is made divisible by its group width ("group-compatible
rounding"), and here the two reference implementations differ:

* ``rounding="pycls"`` (the default; the published MODEL_ZOO numbers come from it):
  ``round(w_b / g) * g`` with numpy's round-half-to-even — RegNetX-400MF stages 32, 64, 160, 384.
* ``rounding="torchvision"``: ``_make_divisible(w_b, g)``, which rounds halves up and never goes
  10% below — RegNetX-400MF stages 32, 64, 160, 400 (hence torchvision's 5,495,976 params against
  the published 5.2M) and RegNetY-800MF 6,432,512 params (published 6.3M). The other presets
  agree under both rules.

Stem 3x3 stride-2 conv-BN-ReLU (32 channels); every stage starts with a stride-2 block; head
global average pool and a linear classifier. The SE squeeze is ``round(w_in * se_ratio)`` of the
block input width, as both implementations.
"""

from __future__ import annotations

import math

from cost_engine.expand.mobile import make_divisible
from cost_engine.families.registry import builtin
from cost_engine.spec.base import MAX_BLOCKS, MAX_CHANNELS, FieldError, SpecError, validate
from cost_engine.spec.blocks import ConvSpec, LinearSpec, PoolSpec, RegNetBlockSpec
from cost_engine.spec.network import NetworkSpec

ROUNDINGS = ("pycls", "torchvision")


def regnet_stages(w0: int, wa: float, wm: float, depth: int, group_width: int, bottleneck_ratio: float = 1.0,
                  rounding: str = "pycls") -> tuple[list[int], list[int], list[int]]:
    """(stage widths, stage depths, stage group widths) of a RegNet; see the module docstring."""
    errors: list[FieldError] = []
    if not isinstance(w0, int) or w0 < 8 or w0 % 8 or w0 > MAX_CHANNELS:
        errors.append(FieldError("w0", f"must be a positive multiple of 8 up to {MAX_CHANNELS}, got {w0!r}"))
    if not 0 <= wa <= MAX_CHANNELS:
        errors.append(FieldError("wa", f"must be in [0, {MAX_CHANNELS}], got {wa!r}"))
    if not 1 < wm <= 16:
        errors.append(FieldError("wm", f"must be in (1, 16], got {wm!r}"))
    if not isinstance(depth, int) or not 1 <= depth <= MAX_BLOCKS:
        errors.append(FieldError("depth", f"must be an integer in [1, {MAX_BLOCKS}], got {depth!r}"))
    if not isinstance(group_width, int) or not 1 <= group_width <= MAX_CHANNELS:
        errors.append(FieldError("group_width", f"must be an integer in [1, {MAX_CHANNELS}], got {group_width!r}"))
    if not 0.0625 <= bottleneck_ratio <= 16:
        errors.append(FieldError("bottleneck_ratio", f"must be in [0.0625, 16], got {bottleneck_ratio!r}"))
    if rounding not in ROUNDINGS:
        errors.append(FieldError("rounding", f"must be one of {', '.join(ROUNDINGS)}; got {rounding!r}"))
    if errors:
        raise SpecError(errors)
    block_widths = []
    for j in range(depth):
        s = round(math.log((w0 + wa * j) / w0) / math.log(wm))
        block_widths.append(round(w0 * wm**s / 8) * 8)
    widths: list[int] = []
    depths: list[int] = []
    for w in block_widths:
        if widths and widths[-1] == w:
            depths[-1] += 1
        else:
            widths.append(w)
            depths.append(1)
    if any(w > MAX_CHANNELS for w in widths):
        raise SpecError([FieldError("wa", f"widths reach {max(widths)} > {MAX_CHANNELS} channels")])
    out_widths, groups = [], []
    for w in widths:
        w_b = max(1, int(w * bottleneck_ratio))
        g = min(group_width, w_b)
        if rounding == "pycls":
            integral = bottleneck_ratio > 1 and float(bottleneck_ratio).is_integer()
            m = math.lcm(g, int(bottleneck_ratio)) if integral else g
            w_b = max(m, round(w_b / m) * m)
        else:
            w_b = make_divisible(w_b, g)
        out_widths.append(int(w_b / bottleneck_ratio))
        groups.append(g)
    return out_widths, depths, groups


def regnet(w0: int, wa: float, wm: float, depth: int, group_width: int, bottleneck_ratio: float = 1.0,
           se_ratio: float = 0.0, *, rounding: str = "pycls", stem_width: int = 32, num_classes: int = 1000,
           resolution: int = 224) -> NetworkSpec:
    """A RegNet network spec (X when ``se_ratio`` is 0, Y with SE)."""
    widths, depths, group_widths = regnet_stages(w0, wa, wm, depth, group_width, float(bottleneck_ratio), rounding)
    stages = tuple(
        tuple(RegNetBlockSpec(out_channels=w, stride=2 if i == 0 else 1, group_width=g,
                              bottleneck_ratio=float(bottleneck_ratio), se_ratio=float(se_ratio))
              for i in range(d))
        for w, d, g in zip(widths, depths, group_widths, strict=True)
    )
    spec = NetworkSpec(
        stem=(ConvSpec(out_channels=stem_width, kernel_size=3, stride=2),),
        stages=stages,
        head=(PoolSpec(mode="global_avg", flatten=True), LinearSpec(out_features=num_classes)),
        resolution=resolution,
    )
    errors = validate(spec)
    if errors:
        raise SpecError(errors)
    return spec


#: name -> (w0, wa, wm, depth, group width, se ratio) of the pycls model zoo (= torchvision's)
PRESETS: dict[str, tuple[int, float, float, int, int, float]] = {
    "regnet_x_400mf": (24, 24.48, 2.54, 22, 16, 0.0),
    "regnet_x_600mf": (48, 36.97, 2.24, 16, 24, 0.0),
    "regnet_x_800mf": (56, 35.73, 2.28, 16, 16, 0.0),
    "regnet_x_1_6gf": (80, 34.01, 2.25, 18, 24, 0.0),
    "regnet_x_3_2gf": (88, 26.31, 2.25, 25, 48, 0.0),
    "regnet_y_400mf": (48, 27.89, 2.09, 16, 8, 0.25),
    "regnet_y_600mf": (48, 32.54, 2.32, 15, 16, 0.25),
    "regnet_y_800mf": (56, 38.84, 2.4, 14, 16, 0.25),
    "regnet_y_1_6gf": (48, 20.71, 2.65, 27, 24, 0.25),
    "regnet_y_3_2gf": (80, 42.63, 2.66, 21, 24, 0.25),
}


def preset(name: str, rounding: str = "pycls") -> NetworkSpec:
    w0, wa, wm, depth, gw, se = PRESETS[name]
    return regnet(w0, wa, wm, depth, gw, 1.0, se, rounding=rounding)


def _register(name: str) -> None:
    builtin(name)(lambda: preset(name))


for _name in PRESETS:
    _register(_name)
