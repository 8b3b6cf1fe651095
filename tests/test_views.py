"""The counting views equal what fvcore, thop, ptflops and FlopCounterMode print for our built modules.

Every comparison runs the real tool on ``cost_engine.build(...)`` with a real CPU tensor and
asserts ``analyze(...).to_dict()["views"][tool]`` equals its output to the unit: every built-in
model (at 64 px for speed, two at their full 224 px marked slow), example networks for every
registered block kind (a new kind without examples fails ``test_every_block_kind_has_examples``),
and a batch of 2. fvcore is given ``model.eval()``: the report describes an inference forward,
and thop/ptflops switch to eval themselves (see :mod:`cost_engine.views`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")
fvcore_nn = pytest.importorskip("fvcore.nn")
thop = pytest.importorskip("thop")
ptflops = pytest.importorskip("ptflops")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from cost_engine import BUILTINS, analyze, build  # noqa: E402
from cost_engine.expand import expand, input_shape_of  # noqa: E402
from cost_engine.expand.registry import EXPANDERS  # noqa: E402
from cost_engine.spec.base import SPEC_KINDS, Spec, SpecError  # noqa: E402
from cost_engine.spec.blocks import (  # noqa: E402
    ConvNeXtBlockSpec,
    ConvSpec,
    DepthwiseSeparableSpec,
    FasterNetBlockSpec,
    FusedMBConvSpec,
    LinearSpec,
    MBConvSpec,
    NormSpec,
    PoolSpec,
    RegNetBlockSpec,
    ResNetBasicSpec,
    ResNetBottleneckSpec,
    ShuffleV2UnitSpec,
    TransformerBlockSpec,
)
from cost_engine.spec.network import NetworkSpec  # noqa: E402
from cost_engine.spec.tokens import PatchEmbedSpec, TokenPoolSpec, TokensSpec  # noqa: E402
from cost_engine.views import COUNT_KEYS, RULES, THOP_MODULE_RULES, views_of  # noqa: E402

SMALL = 64  # resolution for the fast runs


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny CPU forwards on a shared 2-core machine: more threads only contend (10x slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

# -- running the real tools ---------------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The tools print warnings for ops they skip (fvcore via logging, jit TracerWarnings, ptflops to
    stdout); none of that is what is under test."""
    loggers = [logging.getLogger(name) for name in ("fvcore", "fvcore.nn.jit_analysis", "thop", "ptflops")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def tool_numbers(model: Any, shape: tuple[int, ...]) -> dict[str, dict[str, int]]:
    """What each tool prints for ``model`` on an input of ``shape`` (ptflops: its own batch-1 input)."""
    torch.manual_seed(0)
    x = torch.randn(*shape)
    model = model.eval()
    out: dict[str, dict[str, int]] = {}
    with _quiet(), torch.no_grad():
        fca = fvcore_nn.FlopCountAnalysis(model, (x,))
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        out["fvcore"] = {"flops": fca.total(), "params": fvcore_nn.parameter_count(model)[""]}
        macs, params = thop.profile(model, inputs=(x,), verbose=False)
        out["thop"] = {"macs": macs, "params": params}
        macs, params = ptflops.get_model_complexity_info(
            model, tuple(shape[1:]), backend="pytorch", as_strings=False, print_per_layer_stat=False,
            verbose=False, ost=io.StringIO())
        if macs is None:  # ptflops swallows a failed forward and prints it
            raise AssertionError("ptflops failed to run the model")
        out["ptflops"] = {"macs": macs, "params": params}
        with FlopCounterMode(display=False) as counter:
            model(x)
        out["flop_counter_mode"] = {"flops": counter.get_total_flops()}
    return out


def assert_views_match(candidate: Spec | str, resolution: int | None = None, batch_size: int = 1,
                       in_channels: int | None = None) -> None:
    report = analyze(candidate, resolution=resolution, batch_size=batch_size, in_channels=in_channels).to_dict()
    model = build(candidate, resolution=resolution, in_channels=in_channels)
    got = tool_numbers(model, tuple(report["input_shape"]))
    views = report["views"]
    assert set(views) == set(COUNT_KEYS)
    for tool, numbers in got.items():
        expected = dict(numbers)
        if tool == "ptflops":  # per image by construction; the view is per batch (module docs)
            expected["macs"] *= batch_size
        assert views[tool] == expected, (
            f"{tool} on {candidate if isinstance(candidate, str) else candidate.kind} at "
            f"{report['input_shape']}: view {views[tool]} != tool {expected}")
        for value in views[tool].values():
            assert isinstance(value, int)


# -- example networks for every registered block kind -------------------------------------------


def _map_net(*blocks: Spec, channels: int = 16, stem_stride: int = 2) -> NetworkSpec:
    """A block (or a few) between a conv stem and a pooled linear head, on feature maps."""
    return NetworkSpec(
        stem=(ConvSpec(out_channels=channels, stride=stem_stride),),
        stages=(tuple(blocks),),
        head=(PoolSpec(mode="global_avg", flatten=True), LinearSpec(out_features=10)),
        resolution=SMALL,
    )


def _token_net(*blocks: Spec, dim: int = 48, head: tuple[Spec, ...] | None = None,
               tokens: TokensSpec | None = None) -> NetworkSpec:
    """Blocks on tokens: patchify stem, token glue, and a pooled linear head."""
    return NetworkSpec(
        stem=(PatchEmbedSpec(out_channels=dim, patch_size=8), tokens or TokensSpec()),
        stages=(tuple(blocks),),
        head=head or (NormSpec(norm="layer"), TokenPoolSpec(mode="cls"), LinearSpec(out_features=10)),
        resolution=SMALL,
    )


_ACTS = ("relu", "relu6", "silu", "gelu", "sigmoid", "hardswish", "tanh", "none")

EXAMPLES: dict[str, list[NetworkSpec]] = {
    "conv": [
        _map_net(*(ConvSpec(out_channels=16, act=a, bias=i % 2 == 0, norm=("batch", "layer", "none")[i % 3])
                   for i, a in enumerate(_ACTS))),
        _map_net(ConvSpec(out_channels=32, kernel_size=5, stride=2, groups=16, dilation=2),
                 ConvSpec(out_channels=32, kernel_size=1, groups=32, bias=True, act="relu6"),
                 ConvSpec(out_channels=8, kernel_size=2, stride=2, norm="none", act="none")),
    ],
    "pool": [
        _map_net(PoolSpec(mode="max", kernel_size=3, stride=2, padding=1),
                 PoolSpec(mode="avg", kernel_size=3, stride=1, padding=1),
                 PoolSpec(mode="avg", kernel_size=2, stride=2, padding=0),
                 PoolSpec(mode="avg", kernel_size=5, stride=3, padding=2)),
        NetworkSpec(stem=(ConvSpec(out_channels=8, stride=2),),
                    stages=((PoolSpec(mode="max", kernel_size=2, stride=2, padding=0, flatten=True),),),
                    head=(LinearSpec(out_features=10),), resolution=SMALL),
    ],
    "norm": [
        _map_net(NormSpec(norm="batch"), NormSpec(norm="layer")),
        NetworkSpec(stem=(ConvSpec(out_channels=8, stride=4),),
                    stages=((PoolSpec(mode="global_avg", flatten=True), NormSpec(norm="layer")),),
                    head=(LinearSpec(out_features=10),), resolution=SMALL),
    ],
    "linear": [
        NetworkSpec(stem=(ConvSpec(out_channels=8, stride=4),),
                    stages=((PoolSpec(mode="global_avg"), LinearSpec(out_features=32, act="gelu"),
                             LinearSpec(out_features=16, bias=False, act="relu"),
                             LinearSpec(out_features=16, act="silu")),),
                    head=(LinearSpec(out_features=10, act="sigmoid"),), resolution=SMALL),
        _token_net(LinearSpec(out_features=48, act="relu6"), LinearSpec(out_features=48, bias=False)),
    ],
    "dwsep": [
        _map_net(DepthwiseSeparableSpec(out_channels=16), DepthwiseSeparableSpec(out_channels=24, stride=2,
                 se_ratio=0.25, act="silu", pw_act=True), DepthwiseSeparableSpec(out_channels=24, kernel_size=5,
                 act="hardswish", skip=False)),
    ],
    "mbconv": [
        _map_net(MBConvSpec(out_channels=16), MBConvSpec(out_channels=24, stride=2, expand_ratio=4, kernel_size=5),
                 MBConvSpec(out_channels=24, expand_ratio=1, se_ratio=0, act="relu6"),
                 MBConvSpec(out_channels=24, expand_ratio=3, se_ratio=0.5, act="hardswish", skip=False)),
    ],
    "fused_mbconv": [
        _map_net(FusedMBConvSpec(out_channels=16, expand_ratio=1), FusedMBConvSpec(out_channels=24, stride=2),
                 FusedMBConvSpec(out_channels=24, se_ratio=0.25, kernel_size=5),
                 FusedMBConvSpec(out_channels=24, expand_ratio=1, se_ratio=0.25, act="gelu")),
    ],
    "fasternet": [
        _map_net(FasterNetBlockSpec(), FasterNetBlockSpec(n_div=2, mlp_ratio=1.5, act="gelu", forward="slicing"),
                 FasterNetBlockSpec(act="none", kernel_size=5), channels=32),
    ],
    "shufflenet_v2": [
        _map_net(ShuffleV2UnitSpec(out_channels=32, stride=2), ShuffleV2UnitSpec(out_channels=32),
                 ShuffleV2UnitSpec(out_channels=32, kernel_size=5), channels=24),
    ],
    "resnet_basic": [
        _map_net(ResNetBasicSpec(out_channels=16), ResNetBasicSpec(out_channels=32, stride=2)),
    ],
    "resnet_bottleneck": [
        _map_net(ResNetBottleneckSpec(width=8), ResNetBottleneckSpec(width=16, stride=2, groups=4),
                 ResNetBottleneckSpec(width=16, expansion=2)),
    ],
    "regnet": [
        _map_net(RegNetBlockSpec(out_channels=32, stride=2, group_width=8),
                 RegNetBlockSpec(out_channels=32, group_width=16, se_ratio=0.25),
                 RegNetBlockSpec(out_channels=48, bottleneck_ratio=0.5, group_width=8, se_ratio=0.25)),
    ],
    "convnext": [
        _map_net(ConvNeXtBlockSpec(), ConvNeXtBlockSpec(kernel_size=3, mlp_ratio=2.0, layer_scale=False),
                 channels=32),
    ],
    "transformer": [
        _token_net(TransformerBlockSpec(heads=4), TransformerBlockSpec(heads=1, mlp_ratio=2.0, act="relu",
                   qkv_bias=False), TransformerBlockSpec(heads=3, act="silu")),
    ],
    "patch_embed": [
        _token_net(TransformerBlockSpec(heads=2)),
        NetworkSpec(stem=(PatchEmbedSpec(out_channels=16, patch_size=4, bias=False),),
                    stages=((ConvSpec(out_channels=16),),),
                    head=(PoolSpec(mode="global_avg", flatten=True), LinearSpec(out_features=10)),
                    resolution=SMALL),
    ],
    "tokens": [
        _token_net(TransformerBlockSpec(heads=2), tokens=TokensSpec(class_token=False, pos_embed=True),
                   head=(TokenPoolSpec(mode="mean"), LinearSpec(out_features=10))),
        _token_net(TransformerBlockSpec(heads=2), tokens=TokensSpec(class_token=True, pos_embed=False)),
        _token_net(LinearSpec(out_features=48), tokens=TokensSpec(class_token=False, pos_embed=False),
                   head=(TokenPoolSpec(mode="mean"), LinearSpec(out_features=10))),
    ],
    "token_pool": [
        _token_net(TransformerBlockSpec(heads=2), head=(TokenPoolSpec(mode="mean"), NormSpec(norm="layer"),
                                                        LinearSpec(out_features=10))),
        _token_net(TransformerBlockSpec(heads=2), head=(TokenPoolSpec(mode="cls"), LinearSpec(out_features=10))),
    ],
}


def _registered_kinds() -> list[str]:
    return sorted(cls.kind for cls in EXPANDERS)


def _example_cases() -> list[Any]:
    return [pytest.param(net, id=f"{kind}-{i}")
            for kind in _registered_kinds() for i, net in enumerate(EXAMPLES.get(kind, ()))]


def test_every_block_kind_has_examples() -> None:
    missing = [k for k in _registered_kinds() if not EXAMPLES.get(k)]
    assert not missing, f"block kinds without example networks for the view tests: {missing}"
    stale = sorted(set(EXAMPLES) - set(SPEC_KINDS))
    assert not stale, f"examples for unknown kinds: {stale}"


def _kinds_in(net: NetworkSpec) -> set[str]:
    return {spec.kind for _, spec in net.blocks()}


def test_examples_exercise_their_kind() -> None:
    for kind, nets in EXAMPLES.items():
        for net in nets:
            assert kind in _kinds_in(net), kind


@pytest.mark.parametrize("net", _example_cases())
def test_views_equal_tools_on_block_examples(net: NetworkSpec) -> None:
    assert_views_match(net)


def test_views_equal_tools_on_a_standalone_block() -> None:
    """A block analyzed on its own (no network around it) is a module like any other."""
    assert_views_match(MBConvSpec(out_channels=16, expand_ratio=4), resolution=32, in_channels=16)


# -- built-in models ----------------------------------------------------------------------------


def _builtin_names() -> list[str]:
    import cost_engine.families.catalog  # noqa: F401  (the family modules fill BUILTINS)

    return sorted(BUILTINS)


#: one model per family runs in the fast suite; every other built-in runs under ``slow`` (CI)
FAST_BUILTINS = frozenset({"efficientnet_b0", "fasternet_t0", "mobilenet_v2", "shufflenet_v2_x1_0", "resnet18",
                           "resnet50", "regnet_y_400mf", "convnext_tiny", "vit_tiny_patch16_224"})


def _builtin_cases() -> list[Any]:
    return [pytest.param(name, marks=() if name in FAST_BUILTINS else pytest.mark.slow)
            for name in _builtin_names()]


@pytest.mark.parametrize("name", _builtin_cases())
def test_views_equal_tools_on_builtins(name: str) -> None:
    assert_views_match(name, resolution=SMALL)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_b0", "vit_tiny_patch16_224"])
def test_views_equal_tools_at_full_resolution(name: str) -> None:
    if name not in _builtin_names():
        pytest.skip(f"{name} is not a built-in here")
    assert_views_match(name, resolution=224)


# -- random networks (the strategy of the trace-equivalence contract) ---------------------------

try:
    from hypothesis import HealthCheck, given, settings
    from test_trace_equivalence import networks
except ImportError:  # pragma: no cover - the strategy lives with the trace contract
    networks = None


def _check_random(case: tuple[NetworkSpec, tuple[int, ...]]) -> None:
    spec, shape = case
    try:
        analyze(spec, batch_size=shape[0])
    except SpecError:
        return  # the strategy can draw blocks that cannot run on the shape reaching them
    assert_views_match(spec, batch_size=shape[0])


if networks is not None:

    @settings(max_examples=8, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(networks())
    def test_views_equal_tools_on_random_networks_quick(case: tuple[NetworkSpec, tuple[int, ...]]) -> None:
        _check_random(case)

    @pytest.mark.slow
    @settings(max_examples=60, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(networks())
    def test_views_equal_tools_on_random_networks(case: tuple[NetworkSpec, tuple[int, ...]]) -> None:
        _check_random(case)


# -- batch size ---------------------------------------------------------------------------------


def _mixed_net() -> NetworkSpec:
    """Every op the tools treat differently, in one network (conv bias, BN, LN2d, pools, SE, attention)."""
    return NetworkSpec(
        stem=(ConvSpec(out_channels=16, stride=2, bias=True, act="relu"),),
        stages=((MBConvSpec(out_channels=16, expand_ratio=2), PoolSpec(mode="avg", kernel_size=3, stride=2),
                 ConvSpec(out_channels=32, norm="layer", act="gelu"), PoolSpec(mode="max"),
                 PatchEmbedSpec(out_channels=32, patch_size=2), TokensSpec(),
                 TransformerBlockSpec(heads=4), TokenPoolSpec(mode="mean")),),
        head=(NormSpec(norm="layer"), LinearSpec(out_features=10, act="relu6")),
        resolution=SMALL,
    )


def test_views_at_batch_two() -> None:
    """fvcore, thop and FlopCounterMode run the real batch-2 input and match the view exactly;
    ptflops only ever counts its own batch-1 input, and its view is that number times the batch."""
    assert_views_match(_mixed_net(), batch_size=2)


def test_views_are_linear_in_batch() -> None:
    one = analyze(_mixed_net()).to_dict()["views"]
    four = analyze(_mixed_net(), batch_size=4).to_dict()["views"]
    for tool, counts in one.items():
        key = COUNT_KEYS[tool]
        assert four[tool][key] == 4 * counts[key]
        if "params" in counts:
            assert four[tool]["params"] == counts["params"]


def test_ptflops_own_batch_two_number_is_not_per_batch() -> None:
    """Why the ptflops view is defined at batch 1 times the batch: fed a batch-2 input it divides
    its module hooks by 2 but not its patched functionals, so its number is neither per image nor
    per batch (here nn.ReLU counts once per image through its hook and twice through F.relu)."""
    model = torch.nn.Sequential(torch.nn.ReLU()).eval()
    with _quiet():
        one, _ = ptflops.get_model_complexity_info(model, (4,), as_strings=False, print_per_layer_stat=False,
                                                   backend="pytorch")
        two, _ = ptflops.get_model_complexity_info(model, (4,), as_strings=False, print_per_layer_stat=False,
                                                   backend="pytorch",
                                                   input_constructor=lambda res: torch.ones(2, *res))
    assert one == 4 + 4  # hook (output numel) + patched F.relu (input numel)
    assert two == 4 + 8  # hook / batch + patch at the full batch


# -- additivity and the tables --------------------------------------------------------------------


def test_report_views_are_the_sum_over_blocks_of_the_full_op_list() -> None:
    """Blocks are memoized and merged by addition; that must equal counting the whole op list at once."""
    net = _mixed_net()
    report = analyze(net, batch_size=2).to_dict()
    assert report["views"] == views_of(expand(net, input_shape_of(net, 2, None)))


def test_views_of_empty_op_list_is_zero() -> None:
    views = views_of([])
    assert views == {tool: ({key: 0, "params": 0} if tool != "flop_counter_mode" else {key: 0})
                     for tool, key in COUNT_KEYS.items()}


def test_every_rule_names_a_known_op_kind() -> None:
    from cost_engine.formulas import FORMULAS

    for tool, rules in RULES.items():
        unknown = set(rules) - set(FORMULAS)
        assert not unknown, f"{tool} rules for op kinds without a formula: {unknown}"


def _module_classes() -> set[type]:
    classes: set[type] = set()
    nets = [net for nets in EXAMPLES.values() for net in nets]
    for net in nets:
        classes.update(type(m) for m in build(net).modules())
    return classes


def test_thop_module_rule_table_matches_thop() -> None:
    """``THOP_MODULE_RULES`` names, for every module class our builders instantiate, the rule thop
    itself resolves (through the MRO); a class it omits must have no counting rule in thop."""
    from thop.profile import _resolve_rule
    from thop.vision import basic_hooks as h

    names = {h.count_convNd: "conv", h.count_linear: "linear", h.count_normalization: "norm",
             h.count_softmax: "softmax", h.count_avgpool: "avg_pool", h.count_adap_avgpool: "adaptive_avg_pool"}
    for cls in _module_classes():
        fn = _resolve_rule(cls, {}, set(), False, False)
        expected = None if fn is None or fn is h.zero_ops else names.get(fn, f"unexpected {fn}")
        assert THOP_MODULE_RULES.get(cls.__name__) == expected, cls


def test_ptflops_hooked_classes_match_ptflops() -> None:
    """Every module class ptflops hooks (exact type) is one the ptflops rules know by name."""
    from ptflops.pytorch_ops import MODULES_MAPPING

    from cost_engine.views import PTFLOPS_LEAF_TYPES

    known = set(PTFLOPS_LEAF_TYPES.values())
    for cls in _module_classes():
        assert (cls in MODULES_MAPPING) == (cls.__name__ in known), cls
