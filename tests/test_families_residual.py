"""ResNet, RegNet, ConvNeXt and ViT families: published numbers, exact reference counts, and the
built module's parameters.

Published numbers are rounded as printed (``25.6`` M params, ``0.4`` GFLOPs): the tolerance is
half a unit of the last printed digit, read from the number in ``reference_models.json`` itself.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import torch

from cost_engine import analyze
from cost_engine.families import BUILTINS, resolve
from cost_engine.families.convnext import convnext
from cost_engine.families.regnet import PRESETS, preset, regnet, regnet_stages
from cost_engine.families.resnet import resnet
from cost_engine.families.vit import vit
from cost_engine.modules import build
from cost_engine.spec import SpecError

REFERENCE = json.loads((Path(__file__).parent / "data" / "reference_models.json").read_text())
MODELS = {m["name"]: m for m in REFERENCE["models"]}
MINE = ("ResNet", "RegNet", "ConvNeXt")
PUBLISHED = sorted(name for name, m in MODELS.items() if m["family"] in MINE)


def conv_linear_matmul_macs(report) -> int:
    return sum(report.summary.by_kind[k].macs for k in ("conv2d", "linear", "matmul") if k in report.summary.by_kind)


def half_unit(printed: float | int) -> Decimal:
    """Half a unit in the last place of a number as the JSON prints it (28 -> 0.5, 0.39 -> 0.005)."""
    exponent = Decimal(repr(printed)).as_tuple().exponent
    return Decimal(5) * Decimal(10) ** (exponent - 1)


def test_published_models_are_covered():
    assert PUBLISHED == ["convnext_tiny", "regnet_x_400mf", "regnet_y_400mf", "regnet_y_600mf", "resnet50"]
    assert half_unit(28) == Decimal("0.5") and half_unit(0.4) == Decimal("0.05") and half_unit(4.56) == Decimal("0.005")


#: Numbers the paper truncates instead of rounding: ConvNeXt prints "28M" for 28,589,128 params
#: (its official code and torchvision count exactly that; 28.6M rounded).
TRUNCATED = {("convnext_tiny", "params_m")}


def printed_as(value: Decimal, printed: float | int, truncated: bool) -> bool:
    """Whether ``value`` prints as ``printed`` at its precision (rounded, or truncated if so marked)."""
    p = Decimal(repr(printed))
    if truncated:
        unit = 2 * half_unit(printed)
        return p <= value < p + unit
    return abs(value - p) <= half_unit(printed)


@pytest.mark.parametrize("name", PUBLISHED)
def test_within_published_rounding(name):
    paper = MODELS[name]["paper"]
    report = analyze(name)
    assert report.input_shape == (1, 3, MODELS[name]["input_resolution"], MODELS[name]["input_resolution"])
    params_m = Decimal(report.params) / Decimal(10**6)
    gmacs = Decimal(conv_linear_matmul_macs(report)) / Decimal(10**9)
    assert printed_as(params_m, paper["params_m"], (name, "params_m") in TRUNCATED), params_m
    assert printed_as(gmacs, paper["flops_g"], (name, "flops_g") in TRUNCATED), gmacs
    assert report.macs == conv_linear_matmul_macs(report)  # nothing else counts as a MAC


#: torchvision's reference counts (sum of numel; MACs of conv + linear [+ attention matmuls]),
#: timm's for vit_tiny. RegNet built-ins follow pycls; their torchvision twins are checked below.
EXACT_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "regnet_y_400mf": 4_344_144,
    "regnet_y_600mf": 6_055_160,
    "convnext_tiny": 28_589_128,
    "convnext_small": 50_223_688,
    "convnext_base": 88_591_464,
    "convnext_large": 197_767_336,
    "vit_tiny_patch16_224": 5_717_416,
    "vit_base_patch16_224": 86_567_656,
    "vit_base_patch32_224": 88_224_232,
}


@pytest.mark.parametrize("name", sorted(EXACT_PARAMS))
def test_exact_reference_params(name):
    assert analyze(name).params == EXACT_PARAMS[name]


def test_resnet50_macs_exact():
    # the well-known 4.09 G of torchvision ResNet-50 (fvcore: 4,089,184,256 conv + linear MACs)
    assert conv_linear_matmul_macs(analyze("resnet50")) == 4_089_184_256


@pytest.mark.parametrize(("name", "gmacs"), [("vit_base_patch16_224", 17.56), ("vit_base_patch32_224", 4.41)])
def test_vit_macs_count_the_attention_matmuls(name, gmacs):
    """torchvision's published 17.56 / 4.41 GFLOPS for vit_b_16 / vit_b_32 include QK^T and AV."""
    report = analyze(name)
    assert abs(report.macs / 1e9 - gmacs) <= 0.005
    assert abs((report.macs - report.summary.by_kind["matmul"].macs) / 1e9 - gmacs) > 0.005


@pytest.mark.parametrize("name", sorted(n for n in BUILTINS if n.startswith(("resnet", "regnet", "convnext", "vit"))))
def test_params_equal_the_built_module(name):
    with torch.device("meta"):
        module = build(name)
    assert sum(p.numel() for p in module.parameters()) == analyze(name).params


# -- RegNet widths ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["regnet_x_400mf", "regnet_y_400mf", "regnet_y_600mf"])
def test_regnet_stage_widths_follow_pycls(name):
    config = MODELS[name]["config"]
    w0, wa, wm, depth, gw, _ = PRESETS[name]
    assert (w0, wa, wm, depth, gw) == (config["W0"], config["WA"], config["WM"], config["DEPTH"], config["GROUP_W"])
    widths, depths, group_widths = regnet_stages(w0, wa, wm, depth, gw)
    assert widths == config["widths"] and depths == config["depths"]
    assert [w // g for w, g in zip(widths, group_widths, strict=True)] == config["groups"]


def test_regnet_torchvision_rounding():
    """torchvision's ``_make_divisible`` rounds 392/16 = 24.5 up to 400; pycls' round-half-even to 384."""
    note = MODELS["regnet_x_400mf"]["config"]["note_torchvision"]
    widths, _, group_widths = regnet_stages(*PRESETS["regnet_x_400mf"][:5], rounding="torchvision")
    assert widths == note["widths"]
    assert [w // g for w, g in zip(widths, group_widths, strict=True)] == note["groups"]
    assert analyze(preset("regnet_x_400mf", "torchvision")).params == 5_495_976  # torchvision's count
    assert analyze(preset("regnet_y_800mf", "torchvision")).params == 6_432_512


def test_regnet_blocks_carry_the_adjusted_group_width():
    spec = resolve("regnet_y_400mf")
    first = spec.stages[0][0]
    assert (first.out_channels, first.stride, first.group_width, first.se_ratio) == (48, 2, 8, 0.25)
    assert all(b.stride == 1 for stage in spec.stages for b in stage[1:])


# -- family arguments ---------------------------------------------------------------------------
def test_bad_family_arguments_are_named():
    with pytest.raises(SpecError) as exc:
        resnet((3, 0, 6), (64, 128), block="wide")
    assert {e.path for e in exc.value.errors} == {"block", "widths", "depths[1]"}
    with pytest.raises(SpecError) as exc:
        regnet(20, -1.0, 1.0, 0, 8)
    assert {e.path for e in exc.value.errors} == {"w0", "wa", "wm", "depth"}
    with pytest.raises(SpecError) as exc:
        vit(16, 100, 12, 3)
    assert [e.path for e in exc.value.errors] == ["heads"]
    with pytest.raises(SpecError) as exc:
        convnext((3, 3), (96,))
    assert [e.path for e in exc.value.errors] == ["dims"]
    with pytest.raises(SpecError) as exc:
        convnext((3, 3), (96, 192), kernel_size=4)
    blocks = [(0, 0), (0, 1), (0, 2), (1, 2), (1, 3), (1, 4)]  # stage 1 starts with its norm + conv downsample
    assert [e.path for e in exc.value.errors] == [f"stages[{s}][{i}].kernel_size" for s, i in blocks]


def test_families_scale_as_specified():
    small = analyze(resnet((1, 1, 1, 1), block="basic", resolution=112))
    assert small.output_shape == (1, 1000)
    r18 = analyze("resnet18")
    assert abs(r18.macs / 1e9 - 1.81) <= 0.005  # torchvision's published 1.81 GFLOPS
    tiny = analyze(vit(16, 192, 12, 3, class_token=False))
    assert tiny.params == EXACT_PARAMS["vit_tiny_patch16_224"] - 192 - 192  # no class token, one fewer position
    assert analyze("convnext_tiny", resolution=256).macs > analyze("convnext_tiny").macs
    assert analyze("vit_tiny_patch16_224", resolution=384).params > EXACT_PARAMS["vit_tiny_patch16_224"]


@pytest.mark.parametrize("ratio", [0.25, 0.5, 2])
def test_regnet_bottleneck_ratios_build(ratio):
    """Group-compatible rounding keeps every bottleneck width a multiple of its group width."""
    spec = regnet(24, 24.48, 2.54, 13, 16, ratio, 0.25)
    for stage in spec.stages:
        width = round(stage[0].out_channels * ratio)
        assert width % min(stage[0].group_width, width) == 0
    with torch.device("meta"):
        module = build(spec)
    assert sum(p.numel() for p in module.parameters()) == analyze(spec).params


@pytest.mark.parametrize("name", ["resnet18", "regnet_y_400mf", "convnext_tiny", "vit_tiny_patch16_224"])
def test_trace_of_the_built_network_equals_the_expansion(name):
    trace = pytest.importorskip("cost_engine.trace")
    from cost_engine.expand import expand

    spec = resolve(name)
    shape = (2, 3, 224, 224)
    expanded = expand(spec, shape)
    traced = trace.trace_ops(build(spec), shape, strict=True)
    assert [op.comparable() for op in traced] == [op.comparable() for op in expanded]
    assert [(op.input_ids, op.output_ids) for op in traced] == [(op.input_ids, op.output_ids) for op in expanded]
