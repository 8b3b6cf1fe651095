"""The mobile families against tests/data/reference_models.json: exact counts for the two
calibration models, the published (rounded) numbers for the others, and the configs themselves.

Tolerance of a published number is half a unit of its last printed digit (``0.39`` -> 0.005,
``5.3`` -> 0.05). JSON cannot keep a trailing zero, so ``12.0`` reads as the paper's ``12`` (0.5).
Conventions: EfficientNet, MobileNetV2 and ShuffleNetV2 publish multiply-adds of conv and linear
layers; FasterNet publishes fvcore's count (convs and linears plus its BN and pooling rules: our
``views["fvcore"]``, which tests/test_views.py holds to the real fvcore), and params there.

Every departure from "within rounding" is listed in ``DEPARTURES`` with its reason and checked
for what it is; none is a silent widening of a tolerance.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import torch

import cost_engine
from cost_engine import analyze
from cost_engine.families.efficientnet import (
    B0_BLOCKS_ARGS,
    decode_block_args,
    efficientnet,
    efficientnet_compound,
    round_filters,
)
from cost_engine.families.fasternet import fasternet
from cost_engine.families.mobilenet import mobilenet_v2
from cost_engine.families.shufflenet import shufflenet_v2
from cost_engine.modules import build as build_module
from cost_engine.report import CostReport
from cost_engine.spec import ConvSpec, NetworkSpec, SpecError, validate

REFERENCE = json.loads((Path(__file__).parent / "data" / "reference_models.json").read_text())
MODELS = {m["name"]: m for m in REFERENCE["models"]}
FAMILIES = {"EfficientNet", "FasterNet", "MobileNetV2", "ShuffleNetV2"}
MINE = sorted(name for name, m in MODELS.items() if m["family"] in FAMILIES)
ALL_MINE = [*MINE, "shufflenet_v2_x0_5", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]

#: torchvision's published ``num_params`` of the same architectures (weights metadata in
#: torchvision/models/*.py and its docs), an independent check of each build
TORCHVISION_PARAMS = {
    "efficientnet_b0": 5288548, "efficientnet_b1": 7794184, "efficientnet_b2": 9109994,
    "mobilenet_v2": 3504872, "shufflenet_v2_x0_5": 1366792, "shufflenet_v2_x1_0": 2278604,
}


def conv_linear_macs(report: CostReport) -> int:
    by_type = report.by_op_type()
    return sum(by_type.get(kind, {}).get("macs", 0) for kind in ("conv2d", "linear"))


def half_unit(value: float) -> float:
    """Half a unit of the last printed digit (see the module docstring)."""
    if float(value).is_integer():
        return 0.5
    exponent = Decimal(repr(value)).as_tuple().exponent
    assert isinstance(exponent, int)
    return 0.5 * 10.0**exponent


def published_flops(name: str, report: CostReport) -> int:
    """The count in the convention the paper used (module docstring)."""
    if MODELS[name]["family"] == "FasterNet":
        return report.summary.views["fvcore"]["flops"]
    return conv_linear_macs(report)


def _megvii_first_unit_delta() -> tuple[int, int]:
    """(MACs, params) that megvii's official ShuffleNetV2 x1.0 adds over torchvision's: its first
    downsampling unit (24 -> 116 at 56 -> 28) sends 24 channels through the projection branch and
    116 - 24 = 92 through the main one, where torchvision sends 58 and 58. Only the two 1x1 convs
    after the split differ (BN widths sum to 116 either way). Counted by the engine itself."""
    def conv1x1(c_in: int, c_out: int) -> CostReport:
        return analyze(ConvSpec(out_channels=c_out, kernel_size=1, norm="none", act="none"),
                       resolution=28, in_channels=c_in)

    megvii = [conv1x1(24, 24), conv1x1(58, 92)]
    torchvision = [conv1x1(24, 58), conv1x1(58, 58)]
    macs = sum(r.macs for r in megvii) - sum(r.macs for r in torchvision)
    params = sum(r.params for r in megvii) - sum(r.params for r in torchvision)
    return macs, params


def _check_published_lower(name: str, ours: float, published: float) -> None:
    # models.json: "a few published FLOPs (EfficientNet B4, B5, B7) are lower than the architecture
    # itself gives". Ours must be above the table, and by no more than 5% (4.6%, 3.7%, 2.0%).
    assert published <= ours <= published * 1.05, (name, ours, published)


def _check_b2_params(name: str, ours: float, published: float) -> None:
    # The paper prints 9.2M; the architecture (and torchvision's port of the official weights)
    # has 9,109,994 parameters. 9.2 is what params + BN running statistics give (Keras' "total
    # params" of the same model), so that is the reading under which the table is right.
    report = analyze(name)
    assert report.params == TORCHVISION_PARAMS[name]
    assert abs((report.params + report.buffers) / 1e6 - published) <= half_unit(published)


def _check_mobilenet_v2_params(name: str, ours: float, published: float) -> None:
    # The paper's Table 4 prints 3.4M; this architecture has 3,504,872 (torchvision's count of
    # the same network), and no counting convention brings it to 3.4 (without BN affine 3.47).
    assert analyze(name).params == TORCHVISION_PARAMS[name]
    assert 0 < ours - published < 0.035 * published


def _check_fasternet_s_params(name: str, ours: float, published: float) -> None:
    # The paper prints 31.1M; the official config (embed 128, depths 1-2-13-2) gives 31,181,032,
    # and fvcore's parameter_count agrees. 31.1 is a truncation, not a rounding: within one unit.
    assert published <= ours < published + 2 * half_unit(published)
    assert analyze(name).summary.views["fvcore"]["params"] == analyze(name).params


def _check_shufflenet_flops(name: str, ours: float, published: float) -> None:
    # torchvision's ShuffleNetV2 (the architecture we build) splits the first downsampling unit's
    # outputs 58/58; the paper's official (megvii) model splits them 24/92, which costs 0.906M
    # more MACs. With that difference the published 146M is met within its rounding.
    delta_macs, delta_params = _megvii_first_unit_delta()
    assert delta_macs == 906304
    assert abs((ours * 1e9 + delta_macs) / 1e9 - published) <= half_unit(published)
    assert abs((analyze(name).params + delta_params) / 1e6 - MODELS[name]["paper"]["params_m"]) <= 0.05


#: (model, "params" | "flops") -> the check that replaces "within rounding", with its reason there
DEPARTURES = {
    ("efficientnet_b4", "flops"): _check_published_lower,
    ("efficientnet_b5", "flops"): _check_published_lower,
    ("efficientnet_b7", "flops"): _check_published_lower,
    ("efficientnet_b2", "params"): _check_b2_params,
    ("mobilenet_v2", "params"): _check_mobilenet_v2_params,
    ("fasternet_s", "params"): _check_fasternet_s_params,
    ("shufflenet_v2_x1_0", "flops"): _check_shufflenet_flops,
}


# -- exact calibration ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["efficientnet_b0", "fasternet_t0"])
def test_calibration_models_are_exact(name: str) -> None:
    exact = MODELS[name]["exact"]
    report = analyze(name)
    assert report.params == exact["params"]
    assert conv_linear_macs(report) == exact["conv_linear_macs"]
    assert report.by_op_type()["batch_norm"]["params"] == exact["bn_affine_params"]
    # the report's own macs add no other MAC op for these convnets
    assert report.macs == exact["conv_linear_macs"]
    assert report.to_dict()["params"] == exact["params"]


@pytest.mark.parametrize("name", ["efficientnet_b0", "fasternet_t0"])
def test_calibration_params_equal_the_built_module(name: str) -> None:
    module = cost_engine.build(name)  # the public surface
    assert sum(p.numel() for p in module.parameters()) == MODELS[name]["exact"]["params"]


@pytest.mark.parametrize("name", ALL_MINE)
def test_params_and_buffers_equal_the_built_module(name: str) -> None:
    with torch.device("meta"):
        module = build_module(name)
    report = analyze(name)
    assert sum(p.numel() for p in module.parameters()) == report.params
    running = sum(b.numel() for n, b in module.named_buffers() if not n.endswith("num_batches_tracked"))
    assert running == report.buffers


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_params_equal_torchvision(name: str) -> None:
    assert analyze(name).params == TORCHVISION_PARAMS[name]


# -- published numbers ----------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["params", "flops"])
@pytest.mark.parametrize("name", MINE)
def test_published_numbers_within_rounding(name: str, metric: str) -> None:
    model = MODELS[name]
    report = analyze(name)
    if metric == "params":
        published, ours = model["paper"]["params_m"], report.params / 1e6
    else:
        published, ours = model["paper"]["flops_g"], published_flops(name, report) / 1e9
    check = DEPARTURES.get((name, metric))
    if check is not None:
        assert abs(ours - published) > half_unit(published), f"{name} {metric} now rounds right: drop the departure"
        check(name, ours, published)
        return
    assert abs(ours - published) <= half_unit(published), (name, metric, ours, published, half_unit(published))


def test_fasternet_fvcore_convention_adds_under_two_percent_to_the_macs() -> None:
    """The published FasterNet FLOPs are fvcore's count, which adds its BN and pooling rules to the
    conv and linear MACs: a difference of convention under 2%, not of architecture."""
    for name in MINE:
        if MODELS[name]["family"] == "FasterNet":
            report = analyze(name)
            macs = conv_linear_macs(report)
            assert macs < report.summary.views["fvcore"]["flops"] < 1.02 * macs


def test_half_unit_reads_the_printed_precision() -> None:
    assert half_unit(0.39) == pytest.approx(0.005)
    assert half_unit(0.146) == pytest.approx(0.0005)
    assert half_unit(5.3) == pytest.approx(0.05)
    assert half_unit(12.0) == 0.5
    assert half_unit(15.52) == pytest.approx(0.005)


# -- configs against models.json ------------------------------------------------------------------
def _stage_summary(spec: NetworkSpec) -> list[tuple[int, int, int, int]]:
    """(out channels, blocks, input side, output side) per stage, shapes from the expansion."""
    from cost_engine.expand import network_blocks

    placed = network_blocks(spec, (1, spec.in_channels, spec.resolution, spec.resolution))
    out = []
    for s, stage in enumerate(spec.stages):
        blocks = [b for b in placed if b.module.startswith(f"stages.{s}.")]
        out.append((blocks[-1].output_shape[1], len(stage), blocks[0].input_shape[2], blocks[-1].output_shape[2]))
    return out


@pytest.mark.parametrize("name", [n for n in MINE if MODELS[n]["family"] == "EfficientNet"])
def test_efficientnet_config_matches_reference(name: str) -> None:
    cfg = MODELS[name]["config"]
    spec = cost_engine.resolve(name)
    assert spec.resolution == MODELS[name]["input_resolution"]
    assert spec.stem[0].out_channels == cfg["stem"]["out_ch"]
    expected = [(s["out_ch"], s["layers"], s["input_res"], s["output_res"]) for s in cfg["stages"]]
    assert _stage_summary(spec) == expected
    assert spec.head[0].out_channels == cfg["head"]["conv1x1_out"]
    placed_first = [stage[0] for stage in spec.stages]
    for block, s in zip(placed_first, cfg["stages"], strict=True):
        assert (block.expand_ratio, block.kernel_size, block.stride) == (s["expand_ratio"], s["kernel"], s["stride"])
    assert sum(len(stage) for stage in spec.stages) == cfg["total_mbconv_blocks"]
    assert list(B0_BLOCKS_ARGS) == cfg["b0_blocks_args"]


@pytest.mark.parametrize("name", [n for n in MINE if MODELS[n]["family"] == "EfficientNet"])
def test_efficientnet_first_block_widths(name: str) -> None:
    """Expanded and SE-squeeze widths of each stage's first block, from the built module."""
    cfg = MODELS[name]["config"]
    with torch.device("meta"):
        module = build_module(name)
    for s, stage in enumerate(cfg["stages"]):
        block = module.stages[s][0]
        assert block.dw.conv.out_channels == stage["expanded_ch_first_block"]
        assert block.se.reduce.out_channels == stage["se_squeeze_ch_first_block"]


@pytest.mark.parametrize("name", [n for n in MINE if MODELS[n]["family"] == "FasterNet"])
def test_fasternet_config_matches_reference(name: str) -> None:
    cfg = MODELS[name]["config"]
    with torch.device("meta"):
        module = build_module(name)
    spec = cost_engine.resolve(name)
    dims = [(s["dim"], s["blocks"] + (1 if s["merging_before"] else 0), 0, s["res"]) for s in cfg["stages"]]
    assert [(c, n, r) for c, n, _, r in _stage_summary(spec)] == [(c, n, r) for c, n, _, r in dims]
    for s, stage in enumerate(cfg["stages"]):
        block = module.stages[s][1 if stage["merging_before"] else 0]
        assert block.spatial_mixing.partial_conv3.in_channels == stage["pconv_ch"]
        assert block.spatial_mixing.dim_untouched == stage["untouched_ch"]
        assert block.mlp[0].out_channels == stage["mlp_hidden"]
    act = spec.stages[0][0].act
    assert act == cfg["act_layer"].lower()


def test_shufflenet_and_mobilenet_configs_match_reference() -> None:
    cfg = MODELS["shufflenet_v2_x1_0"]["config"]
    spec = cost_engine.resolve("shufflenet_v2_x1_0")
    outs = [spec.stem[0].out_channels] + [stage[0].out_channels for stage in spec.stages] + [spec.head[0].out_channels]
    assert outs == cfg["stages_out_channels"]
    assert [len(stage) for stage in spec.stages] == cfg["stages_repeats"]
    cfg = MODELS["mobilenet_v2"]["config"]
    spec = cost_engine.resolve("mobilenet_v2")
    table = [[int(stage[0].expand_ratio), stage[0].out_channels, len(stage), stage[0].stride] for stage in spec.stages]
    assert table == cfg["inverted_residual_setting_t_c_n_s"]
    assert spec.head[0].out_channels == cfg["last_channel"]


# -- family parameters and their errors --------------------------------------------------------------
def test_round_filters_official_examples() -> None:
    assert round_filters(32, 1.1) == 32  # 35.2 -> 32 (>= 90%)
    assert round_filters(40, 1.1) == 48  # 44 -> 48 (nearest, ties up)
    assert round_filters(16, 1.4) == 24  # 22.4 -> 24
    assert round_filters(24, 1.8) == 40  # 43.2 -> 40
    assert round_filters(1280, 2.0) == 2560
    assert round_filters(10, 0.5) == 8  # never below the divisor


def test_block_args_round_trip_and_errors() -> None:
    for text in B0_BLOCKS_ARGS:
        assert decode_block_args(text).encode() == text
    args = decode_block_args("r2_k5_s22_e4.5_i16_o24_noskip")
    assert (args.repeats, args.kernel_size, args.stride, args.expand_ratio, args.se_ratio, args.skip) == (
        2, 5, 2, 4.5, 0.0, False)
    with pytest.raises(SpecError) as err:
        decode_block_args("r2_k3_s12_x9_o24", path="blocks_args[3]")
    paths = {e.path for e in err.value.errors}
    assert {"blocks_args[3].stride", "blocks_args[3]", "blocks_args[3].expand_ratio",
            "blocks_args[3].in_channels"} <= paths


def test_custom_block_args_make_a_search_space_network() -> None:
    spec = efficientnet(1.0, 1.0, 192, blocks_args=("r1_k3_s11_e1_i32_o16_se0.25", "r3_k7_s22_e3_i16_o40_se0"))
    assert [len(stage) for stage in spec.stages] == [1, 3]
    assert spec.stages[1][0].kernel_size == 7 and spec.stages[1][0].se_ratio == 0.0
    assert analyze(spec).output_shape == (1, 1000)


@pytest.mark.parametrize(("call", "paths"), [
    (lambda: efficientnet(0.0, 9.0, 16), {"width_coefficient", "depth_coefficient", "resolution"}),
    (lambda: efficientnet(blocks_args=("r1_k4_s11_e1_i32_o16", "r2_k3_s11_e6_i16_o0")),
     {"blocks_args[0].kernel_size", "blocks_args[1].out_channels"}),
    (lambda: efficientnet_compound(-1, alpha=0.5), {"phi", "alpha"}),
    (lambda: fasternet(depths=(1, 0), n_div=0, act="swishy"), {"depths[1]", "n_div", "act"}),
    (lambda: fasternet(embed_dim=4096), {"embed_dim"}),
    (lambda: fasternet(mlp_ratio=100.0, kernel_size=2), {"mlp_ratio", "kernel_size"}),
    (lambda: mobilenet_v2(width_mult=0), {"width_mult"}),
    (lambda: shufflenet_v2((24, 116)), {"stages_out_channels"}),
    (lambda: shufflenet_v2(stages_repeats=(4, 0, 4)), {"stages_repeats[1]"}),
    (lambda: shufflenet_v2((24, 117, 232, 465, 1024)), {"stages_out_channels[1]", "stages_out_channels[3]"}),
])
def test_family_errors_name_every_bad_field(call, paths: set[str]) -> None:
    with pytest.raises(SpecError) as err:
        call()
    assert {e.path for e in err.value.errors} == paths


@pytest.mark.parametrize("width", [0.35, 0.5, 0.75, 1.4])
def test_mobilenet_v2_width_multiplier(width: float) -> None:
    spec = mobilenet_v2(width)
    assert not validate(spec)
    assert all(stage[0].out_channels % 8 == 0 for stage in spec.stages)
    assert spec.head[0].out_channels == (1792 if width == 1.4 else 1280)
    assert analyze(spec).output_shape == (1, 1000)


def test_generated_networks_are_valid_and_run() -> None:
    for name in ALL_MINE:
        assert not validate(cost_engine.resolve(name)), name
    spec = fasternet(48, (1, 1, 2, 1), n_div=2, mlp_ratio=3.0, forward="slicing", resolution=160)
    assert analyze(spec).output_shape == (1, 1000)
