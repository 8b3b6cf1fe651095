"""The contract between the two producers of op lists: closed-form expansion of a spec and the
aten-level trace of the module built from it must agree op for op, and so in every total.

Every registered block kind needs examples here (a new kind without one fails), every built-in
model is checked whole, and hypothesis draws a few hundred random small networks of mixed blocks.
When one of these fails, the first differing op names the block, the module path and the field.
"""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cost_engine.expand import EXPANDERS, expand, expand_block, input_shape_of
from cost_engine.families import BUILTINS, catalog, resolve  # noqa: F401  (catalog registers the built-ins)
from cost_engine.modules import build, build_block
from cost_engine.ops import Op, Shape
from cost_engine.spec import (
    ConvNeXtBlockSpec,
    ConvSpec,
    DepthwiseSeparableSpec,
    FasterNetBlockSpec,
    FusedMBConvSpec,
    LinearSpec,
    MBConvSpec,
    NetworkSpec,
    NormSpec,
    PatchEmbedSpec,
    PoolSpec,
    RegNetBlockSpec,
    ResNetBasicSpec,
    ResNetBottleneckSpec,
    ShuffleV2UnitSpec,
    Spec,
    SpecError,
    TokenPoolSpec,
    TokensSpec,
    TransformerBlockSpec,
    validate,
)
from cost_engine.spec.base import ACTIVATIONS
from cost_engine.summary import Counts, summarize
from cost_engine.trace import trace_ops

MAP = (2, 16, 9, 9)  # batch 2 exercises the batch-dependent copies (attention)
TOKENS = (2, 5, 16)

#: kind -> (spec, input shape) examples; each variant switches on a different code path.
EXAMPLES: dict[str, list[tuple[Spec, Shape]]] = {
    "conv": [
        (ConvSpec(out_channels=8), MAP),
        (ConvSpec(out_channels=32, kernel_size=5, stride=2, groups=16, bias=True, act="relu6"), MAP),
        (ConvSpec(out_channels=8, kernel_size=3, dilation=2, norm="layer", act="gelu"), MAP),
        (ConvSpec(out_channels=24, kernel_size=2, stride=2, norm="none", act="none", bias=True), MAP),
        (ConvSpec(out_channels=8, kernel_size=1, act="hardswish"), (1, 3, 8, 8)),
        (ConvSpec(out_channels=8, act="tanh", groups=4), MAP),
        (ConvSpec(out_channels=8, act="sigmoid", stride=3), MAP),
    ],
    "dwsep": [
        (DepthwiseSeparableSpec(out_channels=16, se_ratio=0.25), MAP),
        (DepthwiseSeparableSpec(out_channels=24, stride=2, kernel_size=5, pw_act=True, act="relu6"), MAP),
        (DepthwiseSeparableSpec(out_channels=16, skip=False, act="silu"), MAP),
    ],
    "mbconv": [
        (MBConvSpec(out_channels=16), MAP),
        (MBConvSpec(out_channels=24, expand_ratio=1, stride=2, kernel_size=5), MAP),
        (MBConvSpec(out_channels=16, expand_ratio=4, se_ratio=0, act="relu6", kernel_size=7), MAP),
        (MBConvSpec(out_channels=16, expand_ratio=2.5, skip=False, act="hardswish"), MAP),
    ],
    "fused_mbconv": [
        (FusedMBConvSpec(out_channels=16), MAP),
        (FusedMBConvSpec(out_channels=16, expand_ratio=1, se_ratio=0.25), MAP),
        (FusedMBConvSpec(out_channels=32, stride=2, se_ratio=0.25, kernel_size=5), MAP),
    ],
    "fasternet": [
        (FasterNetBlockSpec(), MAP),
        (FasterNetBlockSpec(forward="slicing"), MAP),
        (FasterNetBlockSpec(n_div=2, mlp_ratio=1.5, kernel_size=5, act="gelu"), MAP),
        (FasterNetBlockSpec(n_div=16, forward="slicing", act="silu"), (1, 16, 9, 9)),
    ],
    "shufflenet_v2": [
        (ShuffleV2UnitSpec(out_channels=16), MAP),
        (ShuffleV2UnitSpec(out_channels=32, stride=2), MAP),
        (ShuffleV2UnitSpec(out_channels=16, kernel_size=5), (1, 16, 9, 9)),
    ],
    "resnet_basic": [
        (ResNetBasicSpec(out_channels=16), MAP),
        (ResNetBasicSpec(out_channels=32, stride=2), MAP),
    ],
    "resnet_bottleneck": [
        (ResNetBottleneckSpec(width=4), MAP),
        (ResNetBottleneckSpec(width=8, groups=4, stride=2), MAP),
        (ResNetBottleneckSpec(width=8, expansion=2), MAP),
    ],
    "regnet": [
        (RegNetBlockSpec(out_channels=16, group_width=8), MAP),
        (RegNetBlockSpec(out_channels=32, stride=2, group_width=8, se_ratio=0.25), MAP),
        (RegNetBlockSpec(out_channels=16, group_width=4, bottleneck_ratio=0.5), MAP),
    ],
    "convnext": [
        (ConvNeXtBlockSpec(), MAP),
        (ConvNeXtBlockSpec(layer_scale=False, kernel_size=3, mlp_ratio=2), (1, 16, 9, 9)),
    ],
    "transformer": [
        (TransformerBlockSpec(heads=4), TOKENS),
        (TransformerBlockSpec(heads=4), (1, 5, 16)),
        (TransformerBlockSpec(heads=1, qkv_bias=False, act="relu"), TOKENS),
        (TransformerBlockSpec(heads=2, mlp_ratio=2), (2, 1, 16)),
    ],
    "pool": [
        (PoolSpec(), MAP),
        (PoolSpec(mode="avg", kernel_size=2, stride=2, padding=0), MAP),
        (PoolSpec(mode="global_avg"), MAP),
        (PoolSpec(mode="global_avg", flatten=True), MAP),
        (PoolSpec(mode="max", kernel_size=3, stride=1, padding=1, flatten=True), (1, 4, 5, 5)),
    ],
    "norm": [
        (NormSpec(), MAP),
        (NormSpec(norm="batch"), MAP),
        (NormSpec(), TOKENS),
        (NormSpec(), (2, 16)),
    ],
    "linear": [
        (LinearSpec(out_features=10), (2, 16)),
        (LinearSpec(out_features=10, bias=False, act="relu"), TOKENS),
        (LinearSpec(out_features=10, act="gelu"), (2, 16, 1, 1)),
        (LinearSpec(out_features=10), (2, 4, 3, 3)),
    ],
    "patch_embed": [
        (PatchEmbedSpec(out_channels=16, patch_size=4), (2, 3, 16, 16)),
        (PatchEmbedSpec(out_channels=8, patch_size=3, bias=False), (1, 3, 10, 10)),
    ],
    "tokens": [
        (TokensSpec(), (2, 16, 4, 4)),
        (TokensSpec(class_token=False), (2, 16, 4, 4)),
        (TokensSpec(pos_embed=False), (2, 16, 4, 4)),
        (TokensSpec(class_token=False, pos_embed=False), (2, 16, 4, 4)),
    ],
    "token_pool": [
        (TokenPoolSpec(), TOKENS),
        (TokenPoolSpec(mode="mean"), TOKENS),
    ],
}

TOTALS = ("macs", "flops", "params", "buffers", "read", "written")


# -- the comparison ---------------------------------------------------------------------------
def renumbered_ids(ops: list[Op] | tuple[Op, ...]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Tensor ids by first appearance (the input is 1): equal data flow gives equal lists."""
    mapping = {1: 1}
    out = []
    for op in ops:
        for i in op.input_ids + op.output_ids:
            mapping.setdefault(i, len(mapping) + 1)
        out.append((tuple(mapping[i] for i in op.input_ids), tuple(mapping[i] for i in op.output_ids)))
    return out


def first_difference(expanded: list[Op], traced: list[Op]) -> str:
    for i, (e, t) in enumerate(zip(expanded, traced, strict=False)):
        if e.comparable() != t.comparable():
            return f"op {i}:\n  expanded {e.comparable()}\n  traced   {t.comparable()}"
    n = min(len(expanded), len(traced))
    extra = expanded[n:] or traced[n:]
    side = "expansion" if len(expanded) > n else "trace"
    return f"{side} has {len(extra)} more op(s), first: {extra[0].comparable()}"


def assert_equivalent(expanded: list[Op], traced: list[Op], module: torch.nn.Module) -> None:
    assert [op.comparable() for op in expanded] == [op.comparable() for op in traced], \
        first_difference(expanded, traced)
    assert renumbered_ids(expanded) == renumbered_ids(traced), "same ops, different data flow (tensor ids)"
    e, t = summarize(expanded), summarize(traced)
    for name in TOTALS:
        assert getattr(e.totals, name) == getattr(t.totals, name), name
    for name in ("fused_access", "peak_elements", "activations"):
        assert getattr(e, name) == getattr(t, name), name
    assert e == t  # breakdowns by kind and by module, views, unknown ops
    assert not t.unknown, t.unknown
    assert t.totals.params == sum(p.numel() for p in module.parameters())
    # BN running mean/var; the integer num_batches_tracked is not read by an inference forward
    assert t.totals.buffers == sum(b.numel() for b in module.buffers() if b.is_floating_point())


def check_block(spec: Spec, shape: Shape) -> None:
    expanded = list(expand_block(spec, shape)[0])
    with torch.device("meta"):
        module = build_block(spec, shape)
    assert_equivalent(expanded, trace_ops(module, shape), module)


# -- every block kind ---------------------------------------------------------------------------
def test_every_registered_block_kind_has_examples() -> None:
    missing = sorted(cls.kind for cls in EXPANDERS if not EXAMPLES.get(cls.kind))
    assert not missing, f"block kinds without an equivalence example: {missing} (add them to EXAMPLES)"


def test_examples_are_valid_specs() -> None:
    for kind, cases in EXAMPLES.items():
        for spec, _ in cases:
            assert spec.kind == kind
            assert not validate(spec), (spec, validate(spec))


CASES = [pytest.param(spec, shape, id=f"{kind}-{i}") for kind, cases in EXAMPLES.items()
         for i, (spec, shape) in enumerate(cases)]


@pytest.mark.parametrize(("spec", "shape"), CASES)
def test_block_expansion_equals_trace(spec: Spec, shape: Shape) -> None:
    if type(spec) not in EXPANDERS:
        pytest.skip("expander not registered yet")
    check_block(spec, shape)


# -- every built-in model -----------------------------------------------------------------------
#: the biggest op lists (> 2 s to build, expand and trace on a shared 2-core box)
SLOW_BUILTINS = {"efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "resnet152",
                 "regnet_y_1_6gf", "convnext_base", "convnext_large"}


def _builtin_params() -> list:
    return [pytest.param(name, id=name, marks=[pytest.mark.slow] if name in SLOW_BUILTINS else [])
            for name in sorted(BUILTINS)]


def test_there_are_built_ins_to_check() -> None:
    assert BUILTINS, "no built-in models registered"


@pytest.mark.parametrize("name", _builtin_params())
def test_builtin_expansion_equals_trace(name: str) -> None:
    spec = resolve(name)
    shape = input_shape_of(spec, 1, None)
    with torch.device("meta"):
        module = build(name)
    assert_equivalent(expand(spec, shape), trace_ops(module, shape), module)


# -- random networks ----------------------------------------------------------------------------
MAP_KINDS = ("conv", "dwsep", "mbconv", "fused_mbconv", "fasternet", "shufflenet_v2", "resnet_basic",
             "resnet_bottleneck", "regnet", "convnext", "pool", "norm")
act = st.sampled_from([a for a in ACTIVATIONS if a != "none"])
width = st.sampled_from([4, 8, 12, 16, 24])


def _map_block(draw: st.DrawFn, c: int, h: int) -> Spec:
    """A valid block for an [N, c, h, h] input (small maps take stride 1 and small kernels)."""
    kind = draw(st.sampled_from(MAP_KINDS))
    stride = draw(st.sampled_from([1, 2])) if h >= 4 else 1
    k = draw(st.sampled_from([1, 3, 5])) if h >= 3 else draw(st.sampled_from([1, 3]))
    if kind == "conv":
        groups = draw(st.sampled_from([g for g in (1, 2, 4, c) if c % g == 0]))
        return ConvSpec(out_channels=groups * draw(st.integers(1, max(1, 24 // groups))),
                        kernel_size=draw(st.sampled_from([k, 2])) if h >= 2 else k, stride=stride, groups=groups,
                        dilation=draw(st.sampled_from([1, 2])) if h >= 5 else 1, bias=draw(st.booleans()),
                        norm=draw(st.sampled_from(["batch", "layer", "none"])),
                        act=draw(st.sampled_from(ACTIVATIONS)))
    if kind == "dwsep":
        return DepthwiseSeparableSpec(out_channels=draw(st.sampled_from([c, draw(width)])), kernel_size=k,
                                      stride=stride, se_ratio=draw(st.sampled_from([0.0, 0.25])), act=draw(act),
                                      pw_act=draw(st.booleans()), skip=draw(st.booleans()))
    if kind == "mbconv":
        return MBConvSpec(out_channels=draw(st.sampled_from([c, draw(width)])),
                          expand_ratio=draw(st.sampled_from([1.0, 2.5, 4.0, 6.0])), kernel_size=k, stride=stride,
                          se_ratio=draw(st.sampled_from([0.0, 0.25])), act=draw(act), skip=draw(st.booleans()))
    if kind == "fused_mbconv":
        return FusedMBConvSpec(out_channels=draw(st.sampled_from([c, draw(width)])),
                               expand_ratio=draw(st.sampled_from([1.0, 2.0, 4.0])), kernel_size=k, stride=stride,
                               se_ratio=draw(st.sampled_from([0.0, 0.25])), act=draw(act), skip=draw(st.booleans()))
    if kind == "fasternet":
        return FasterNetBlockSpec(n_div=draw(st.sampled_from([d for d in (1, 2, 4) if c // d >= 1])),
                                  mlp_ratio=draw(st.sampled_from([1.0, 2.0, 1.5])), kernel_size=k, act=draw(act),
                                  forward=draw(st.sampled_from(["split_cat", "slicing"])))
    if kind == "shufflenet_v2":
        if c % 2 == 0 and draw(st.booleans()):
            return ShuffleV2UnitSpec(out_channels=c, stride=1, kernel_size=k)
        return ShuffleV2UnitSpec(out_channels=draw(width), stride=2 if h >= 2 else 1, kernel_size=k)
    if kind == "resnet_basic":
        return ResNetBasicSpec(out_channels=draw(st.sampled_from([c, draw(width)])), stride=stride)
    if kind == "resnet_bottleneck":
        groups = draw(st.sampled_from([1, 2, 4]))
        return ResNetBottleneckSpec(width=groups * draw(st.integers(1, 4)), stride=stride, groups=groups,
                                    expansion=draw(st.sampled_from([1, 2, 4])))
    if kind == "regnet":
        out = draw(st.sampled_from([8, 16, 24]))
        return RegNetBlockSpec(out_channels=out, stride=stride, group_width=draw(st.sampled_from([4, 8])),
                               bottleneck_ratio=draw(st.sampled_from([0.5, 1.0])),
                               se_ratio=draw(st.sampled_from([0.0, 0.25])))
    if kind == "convnext":
        return ConvNeXtBlockSpec(kernel_size=draw(st.sampled_from([3, 7])), mlp_ratio=draw(st.sampled_from([2.0, 4.0])),
                                 layer_scale=draw(st.booleans()))
    if kind == "pool":
        mode = draw(st.sampled_from(["max", "avg"])) if h >= 2 else "global_avg"
        pk = draw(st.sampled_from([2, 3])) if h >= 3 else 2
        return PoolSpec(mode=mode, kernel_size=pk, stride=draw(st.sampled_from([1, 2])), padding=pk // 2)
    return NormSpec(norm=draw(st.sampled_from(["batch", "layer"])))


@st.composite
def networks(draw: st.DrawFn) -> tuple[NetworkSpec, Shape]:
    """A stem conv, 1-4 random map blocks, then a classifier head or a small ViT tail."""
    n, c0, r = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 3, 4])), draw(st.integers(8, 64))
    shape: Shape = (n, c0, r, r)
    stem = ConvSpec(out_channels=draw(width), kernel_size=3, stride=draw(st.sampled_from([1, 2])), act=draw(act))
    blocks: list[Spec] = []
    shape = expand_block(stem, shape)[2]
    for _ in range(draw(st.integers(1, 4))):
        block = _map_block(draw, shape[1], shape[2])
        assume(not validate(block))
        try:
            shape = expand_block(block, shape)[2]
        except Exception:  # a ShapeError: this block cannot run here
            assume(False)
        blocks.append(block)
    tail = draw(st.sampled_from(["classifier", "flatten_linear", "vit"]))
    head: list[Spec] = []
    if tail == "classifier":
        head = [PoolSpec(mode="global_avg", flatten=True),
                LinearSpec(out_features=draw(width), act=draw(st.sampled_from(ACTIVATIONS)))]
    elif tail == "flatten_linear":
        head = [LinearSpec(out_features=10, bias=draw(st.booleans()))]
    else:
        p = draw(st.sampled_from([p for p in (1, 2, 4) if p <= shape[2]]))
        heads = draw(st.sampled_from([1, 2, 4]))
        head = [PatchEmbedSpec(out_channels=8 * heads, patch_size=p, bias=draw(st.booleans())),
                TokensSpec(class_token=draw(st.booleans()), pos_embed=draw(st.booleans())),
                *[TransformerBlockSpec(heads=heads, mlp_ratio=draw(st.sampled_from([1.0, 2.0])), act=draw(act),
                                       qkv_bias=draw(st.booleans())) for _ in range(draw(st.integers(1, 2)))],
                NormSpec(norm="layer"), TokenPoolSpec(mode=draw(st.sampled_from(["cls", "mean"]))),
                LinearSpec(out_features=10)]
    spec = NetworkSpec(stem=(stem,), stages=(tuple(blocks),), head=tuple(head), in_channels=c0, resolution=r)
    return spec, (n, c0, r, r)


def check_network(case: tuple[NetworkSpec, Shape]) -> None:
    spec, shape = case
    assert not validate(spec)
    try:
        expanded = expand(spec, shape)
    except SpecError:
        assume(False)
        return
    with torch.device("meta"):
        module = build(spec, shape)
    assert_equivalent(expanded, trace_ops(module, shape), module)


@settings(max_examples=25, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(networks())
def test_random_networks_expansion_equals_trace_quick(case: tuple[NetworkSpec, Shape]) -> None:
    check_network(case)


@pytest.mark.slow
@settings(max_examples=300, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(networks())
def test_random_networks_expansion_equals_trace(case: tuple[NetworkSpec, Shape]) -> None:
    check_network(case)


@pytest.mark.parametrize("first", [ConvNeXtBlockSpec(), ConvSpec(out_channels=8, norm="layer"), NormSpec()],
                         ids=["convnext", "conv-layer-norm", "norm"])
def test_flatten_of_a_channels_last_map_copies(first: Spec) -> None:
    """LayerNorm2d/ConvNeXt leave a channels-last view that conv keeps; flattening it copies."""
    spec = NetworkSpec(stem=(first, ConvSpec(out_channels=8)), head=(LinearSpec(out_features=10),), in_channels=8,
                       resolution=4)
    check_network((spec, (1, 8, 4, 4)))


def test_summary_fields_compared_are_the_counts() -> None:
    """Guard: if Counts grows a field, TOTALS above must say whether the contract covers it."""
    assert set(TOTALS) | {"ops"} == {f.name for f in fields(Counts)}
