"""The mobile blocks (dwsep, mbconv, fused_mbconv, fasternet, shufflenet_v2): memory-access
formulas from the papers, the PConv FLOPs ratio, architecture rules, errors with field paths,
and expansion == trace of the built module, op for op."""

from __future__ import annotations

import pytest
import torch

from cost_engine import analyze
from cost_engine.expand import expand_block
from cost_engine.expand.mobile import expanded_channels, make_divisible, se_channels
from cost_engine.expand.registry import BLOCK_MODULE_TYPES
from cost_engine.modules import build_block
from cost_engine.report import CostReport
from cost_engine.spec import (
    ConvSpec,
    DepthwiseSeparableSpec,
    FasterNetBlockSpec,
    FusedMBConvSpec,
    MBConvSpec,
    NetworkSpec,
    PoolSpec,
    ShuffleV2UnitSpec,
    SpecError,
    from_dict,
)

#: (spec, input shape) covering every branch of the five expanders
CASES = [
    (DepthwiseSeparableSpec(out_channels=32, se_ratio=0.25), (2, 32, 9, 9)),
    (DepthwiseSeparableSpec(out_channels=48, stride=2, pw_act=True, act="relu6"), (1, 32, 9, 9)),
    (DepthwiseSeparableSpec(out_channels=32, skip=False, kernel_size=5), (1, 32, 8, 8)),
    (MBConvSpec(out_channels=24, stride=2), (1, 32, 15, 15)),
    (MBConvSpec(out_channels=32, expand_ratio=1), (2, 32, 8, 8)),
    (MBConvSpec(out_channels=32, expand_ratio=4.5, se_ratio=0.0, act="relu6", kernel_size=7), (1, 32, 8, 8)),
    (MBConvSpec(out_channels=40, act="hardswish", se_ratio=0.1), (1, 40, 7, 7)),
    (FusedMBConvSpec(out_channels=32), (1, 32, 9, 9)),
    (FusedMBConvSpec(out_channels=32, expand_ratio=1, se_ratio=0.25), (2, 32, 9, 9)),
    (FusedMBConvSpec(out_channels=64, stride=2, se_ratio=0.25, act="gelu"), (1, 32, 9, 9)),
    (FasterNetBlockSpec(), (2, 40, 14, 14)),
    (FasterNetBlockSpec(forward="slicing"), (1, 40, 14, 14)),
    (FasterNetBlockSpec(forward="slicing", act="none", n_div=3), (1, 40, 14, 14)),
    (FasterNetBlockSpec(act="gelu", kernel_size=5, mlp_ratio=1.5, n_div=1), (1, 40, 14, 14)),
    (ShuffleV2UnitSpec(out_channels=48), (2, 48, 14, 14)),
    (ShuffleV2UnitSpec(out_channels=116, stride=2), (1, 24, 56, 56)),
    (ShuffleV2UnitSpec(out_channels=64, stride=2, kernel_size=5), (1, 33, 13, 13)),
]
IDS = [f"{spec.kind}-{i}" for i, (spec, _) in enumerate(CASES)]


def block_report(spec, shape, dtype: str = "float32") -> CostReport:
    return analyze(spec, batch_size=shape[0], resolution=shape[2], in_channels=shape[1], dtype=dtype)


def module_access(report: CostReport, module: str) -> int:
    """Memory access of one module path, in elements."""
    return report.by_module()[module]["memory_access_bytes"] // report.itemsize


# -- memory access: the papers' formulas ----------------------------------------------------------
@pytest.mark.parametrize("forward", ["split_cat", "slicing"])
@pytest.mark.parametrize(("c", "n_div", "k", "hw"), [(40, 4, 3, 56), (320, 4, 3, 7), (64, 2, 5, 14), (48, 8, 3, 28)])
def test_pconv_memory_access_is_fasternets_formula(forward: str, c: int, n_div: int, k: int, hw: int) -> None:
    """FasterNet eq. (2): the partial conv itself reads and writes ``h*w*2*c_p + k^2*c_p^2``."""
    spec = FasterNetBlockSpec(n_div=n_div, kernel_size=k, forward=forward)
    report = block_report(spec, (1, c, hw, hw))
    cp = c // n_div
    assert module_access(report, "spatial_mixing.partial_conv3") == hw * hw * 2 * cp + k * k * cp * cp
    for dtype, size in (("float16", 2), ("float64", 8)):
        other = block_report(spec, (1, c, hw, hw), dtype)
        assert other.by_module()["spatial_mixing.partial_conv3"]["memory_access_bytes"] == size * (
            hw * hw * 2 * cp + k * k * cp * cp)


@pytest.mark.parametrize(("forward", "around"), [
    ("split_cat", {"split": 0, "concat": 2}),  # split is a view; concat reads c and writes c
    ("slicing", {"copy": 2}),  # clone reads and writes c; the write-back is counted per c_p below
])
def test_breakdown_shows_what_the_pconv_formula_leaves_out(forward: str, around: dict[str, int]) -> None:
    c, hw, n_div = 64, 28, 4
    cp = c // n_div
    report = block_report(FasterNetBlockSpec(n_div=n_div, forward=forward), (1, c, hw, hw))
    by_type = report.by_op_type()
    pconv = hw * hw * 2 * cp + 9 * cp * cp
    wrapper = module_access(report, "spatial_mixing")  # the functional ops of the PConv module
    if forward == "split_cat":
        assert by_type["split"]["memory_access_bytes"] == 0
        assert wrapper == 2 * c * hw * hw
    else:
        assert by_type["copy"]["ops"] == 2
        assert wrapper == 2 * c * hw * hw + 2 * cp * hw * hw  # clone + write-back of the slice
    assert set(around) <= set(by_type)
    # the PConv module's whole traffic is the formula plus exactly those ops
    assert module_access(report, "spatial_mixing") + module_access(report, "spatial_mixing.partial_conv3") == (
        wrapper + pconv)


@pytest.mark.parametrize(("c1", "c2", "hw"), [(58, 58, 28), (24, 58, 56), (116, 232, 14)])
def test_pointwise_conv_memory_access_is_shufflenet_v2s_formula(c1: int, c2: int, hw: int) -> None:
    """ShuffleNetV2 guideline G1: a 1x1 conv moves ``h*w*(c1 + c2) + c1*c2`` elements."""
    alone = block_report(ConvSpec(out_channels=c2, kernel_size=1, norm="none", act="none"), (1, c1, hw, hw))
    assert alone.memory_access_elements == hw * hw * (c1 + c2) + c1 * c2
    # the same inside the blocks: ShuffleNetV2's own last 1x1, FasterNet's and MBConv's pointwise convs
    unit = block_report(ShuffleV2UnitSpec(out_channels=2 * c1), (1, 2 * c1, hw, hw))
    assert module_access(unit, "branch2.5") == hw * hw * (c1 + c1) + c1 * c1
    block = block_report(FasterNetBlockSpec(mlp_ratio=c2 / c1), (1, c1, hw, hw))
    assert module_access(block, "mlp.0") == hw * hw * (c1 + c2) + c1 * c2
    mb = block_report(MBConvSpec(out_channels=c2, expand_ratio=1, se_ratio=0), (1, c1, hw, hw))
    assert module_access(mb, "project.conv") == hw * hw * (c1 + c2) + c1 * c2


# -- PConv FLOPs ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n_div", "ratio"), [(4, 1 / 16), (2, 1 / 4), (1, 1)])
@pytest.mark.parametrize("forward", ["split_cat", "slicing"])
def test_pconv_flops_are_r_squared_of_a_full_conv(n_div: int, ratio: float, forward: str) -> None:
    """At partial ratio r = 1/n_div the PConv costs r^2 of a full kxk conv (exactly, c divisible)."""
    c, hw = 64, 28
    pconv = block_report(FasterNetBlockSpec(n_div=n_div, forward=forward), (1, c, hw, hw))
    full = block_report(ConvSpec(out_channels=c, kernel_size=3, norm="none", act="none"), (1, c, hw, hw))
    mixing = pconv.by_module()
    pconv_flops = mixing["spatial_mixing"]["flops"] + mixing["spatial_mixing.partial_conv3"]["flops"]
    assert pconv_flops == full.flops * ratio
    assert mixing["spatial_mixing.partial_conv3"]["macs"] == full.macs * ratio


def test_pconv_on_channels_not_divisible_uses_the_floor() -> None:
    report = block_report(FasterNetBlockSpec(n_div=4), (1, 42, 7, 7))
    assert report.by_module()["spatial_mixing.partial_conv3"]["params"] == 10 * 10 * 9


# -- architecture rules -----------------------------------------------------------------------------
def test_width_rules() -> None:
    assert make_divisible(35.2) == 32 and make_divisible(44) == 48 and make_divisible(3) == 8
    assert expanded_channels(16, 6) == 96
    assert expanded_channels(20, 4.5) == 88  # make_divisible(90, 8)
    assert expanded_channels(21, 1) == 21  # ratio 1: no expansion, the input width itself
    assert se_channels(112, 0.25) == 28 and se_channels(3, 0.25) == 1


@pytest.mark.parametrize(("spec", "shape", "residual"), [
    (MBConvSpec(out_channels=32), (1, 32, 8, 8), True),
    (MBConvSpec(out_channels=32, skip=False), (1, 32, 8, 8), False),
    (MBConvSpec(out_channels=32, stride=2), (1, 32, 8, 8), False),
    (MBConvSpec(out_channels=48), (1, 32, 8, 8), False),
    (DepthwiseSeparableSpec(out_channels=32), (1, 32, 8, 8), True),
    (FusedMBConvSpec(out_channels=32, stride=2), (1, 32, 8, 8), False),
    (FusedMBConvSpec(out_channels=32), (1, 32, 8, 8), True),
    (FasterNetBlockSpec(), (1, 32, 8, 8), True),
    (ShuffleV2UnitSpec(out_channels=32), (1, 32, 8, 8), False),
])
def test_residual_only_when_shapes_allow(spec, shape, residual: bool) -> None:
    ops = expand_block(spec, shape)[0]
    assert any(op.kind == "add" for op in ops) is residual


def test_mbconv_se_squeezes_the_block_input_not_the_expansion() -> None:
    ops = expand_block(MBConvSpec(out_channels=24, expand_ratio=6, se_ratio=0.25), (1, 16, 8, 8))[0]
    reduce = next(op for op in ops if op.module == "se.reduce")
    assert reduce.weights == ((4, 96, 1, 1), (4,))  # 16 * 0.25, bias
    kinds = [op.kind for op in ops if op.module.startswith("se")]
    assert kinds == ["adaptive_avg_pool2d", "conv2d", "silu", "conv2d", "sigmoid", "mul"]


def test_shufflenet_unit_ops_and_the_shuffle_copy() -> None:
    ops = expand_block(ShuffleV2UnitSpec(out_channels=48), (1, 48, 14, 14))[0]
    assert ops[0].kind == "split" and ops[0].outputs == ((1, 24, 14, 14), (1, 24, 14, 14))
    assert [op.kind for op in ops[-2:]] == ["concat", "copy"]
    assert ops[-1].inputs == ((1, 24, 2, 14, 14),)  # contiguous() of the transposed (n, c/g, g, h, w) view
    down = expand_block(ShuffleV2UnitSpec(out_channels=116, stride=2), (1, 24, 56, 56))[0]
    convs = [(op.module, op.weights[0]) for op in down if op.kind == "conv2d"]
    assert convs == [("branch1.0", (24, 1, 3, 3)), ("branch1.2", (58, 24, 1, 1)), ("branch2.0", (58, 24, 1, 1)),
                     ("branch2.3", (58, 1, 3, 3)), ("branch2.5", (58, 58, 1, 1))]


def test_fasternet_slicing_and_split_cat_cost_the_same_arithmetic() -> None:
    a = block_report(FasterNetBlockSpec(forward="split_cat"), (1, 64, 28, 28))
    b = block_report(FasterNetBlockSpec(forward="slicing"), (1, 64, 28, 28))
    assert (a.macs, a.flops, a.params) == (b.macs, b.flops, b.params)
    assert a.memory_access_elements != b.memory_access_elements  # concat vs clone + write-back


# -- errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "paths"), [
    ({"kind": "mbconv", "out_channels": 0, "kernel_size": 4, "expand_ratio": 0.5, "act": "swishy"},
     {"out_channels", "kernel_size", "expand_ratio", "act"}),
    ({"kind": "dwsep", "out_channels": 16, "se_ratio": 2.0, "stride": 0}, {"se_ratio", "stride"}),
    ({"kind": "fused_mbconv", "out_channels": 16, "kernel_size": 0, "expand_ratio": 17},
     {"kernel_size", "expand_ratio"}),
    ({"kind": "fused_mbconv", "out_channels": 16, "skip": "yes"}, {"skip"}),
    ({"kind": "fasternet", "n_div": 0, "forward": "inplace", "mlp_ratio": 0.0}, {"n_div", "forward", "mlp_ratio"}),
    ({"kind": "shufflenet_v2", "out_channels": 33}, {"out_channels"}),
    ({"kind": "shufflenet_v2", "out_channels": 32, "stride": 3, "width": 2}, {"stride", "width"}),
    ({"kind": "mbconv"}, {"out_channels"}),
])
def test_bad_block_specs_name_every_field(data: dict, paths: set[str]) -> None:
    with pytest.raises(SpecError) as err:
        from_dict(data)
    assert {e.path for e in err.value.errors} == paths


def test_bad_block_inside_a_network_has_its_full_path() -> None:
    data = {"kind": "network", "stem": [{"kind": "conv", "out_channels": 16, "stride": 2}],
            "stages": [[{"kind": "mbconv", "out_channels": 24},
                        {"kind": "mbconv", "out_channels": 24, "kernel_size": 4}],
                       [{"kind": "fasternet", "forward": "nope"}]]}
    with pytest.raises(SpecError) as err:
        from_dict(data)
    assert {e.path for e in err.value.errors} == {"stages[0][1].kernel_size", "stages[1][0].forward"}


@pytest.mark.parametrize(("spec", "shape", "field"), [
    (ShuffleV2UnitSpec(out_channels=34), (1, 33, 8, 8), "out_channels"),  # odd input: cannot halve
    (ShuffleV2UnitSpec(out_channels=64), (1, 32, 8, 8), "out_channels"),  # stride 1 keeps the width
    (FasterNetBlockSpec(n_div=8), (1, 6, 8, 8), "n_div"),  # 6 // 8 = 0 channels to convolve
])
def test_shape_errors_name_the_field_and_the_shape(spec, shape, field: str) -> None:
    net = NetworkSpec(stages=((ConvSpec(out_channels=shape[1], kernel_size=1),), (spec,)),
                      in_channels=shape[1], resolution=shape[2])
    with pytest.raises(SpecError) as err:
        analyze(net)
    (error,) = err.value.errors
    assert error.path == f"stages[1][0].{field}"
    assert str(list(shape)) in error.reason
    with pytest.raises(SpecError):
        block_report(spec, shape)


def test_block_on_a_flat_input_is_a_shape_error() -> None:
    net = NetworkSpec(stem=(ConvSpec(out_channels=8),),
                      head=(PoolSpec(mode="global_avg", flatten=True), MBConvSpec(out_channels=8)))
    with pytest.raises(SpecError) as err:
        analyze(net)
    assert err.value.errors[0].path == "head[1].kind"


def test_stride_two_unit_accepts_odd_input_channels() -> None:
    report = block_report(ShuffleV2UnitSpec(out_channels=64, stride=2), (1, 33, 13, 13))
    assert report.output_shape == (1, 64, 7, 7)


# -- expansion == built module ------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "shape"), CASES, ids=IDS)
def test_built_module_runs_to_the_expanded_shape_with_the_same_params(spec, shape) -> None:
    out = expand_block(spec, shape)[2]
    module = build_block(spec, shape).eval()
    assert type(module).__name__ == BLOCK_MODULE_TYPES[type(spec)]
    with torch.no_grad():
        y = module(torch.randn(shape))
    assert tuple(y.shape) == out
    report = block_report(spec, shape)
    assert sum(p.numel() for p in module.parameters()) == report.params


@pytest.mark.parametrize(("spec", "shape"), CASES, ids=IDS)
def test_trace_of_the_built_module_equals_the_expansion(spec, shape) -> None:
    trace = pytest.importorskip("cost_engine.trace")
    from cost_engine.summary import summarize

    expanded = expand_block(spec, shape)[0]
    traced = trace.trace_ops(build_block(spec, shape), shape, strict=True)
    assert [op.comparable() for op in traced] == [op.comparable() for op in expanded]
    a, b = summarize(expanded), summarize(traced)
    assert (a.totals, a.peak_elements, a.fused_access, a.views) == (b.totals, b.peak_elements, b.fused_access,
                                                                      b.views)
