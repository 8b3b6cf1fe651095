"""Residual and transformer blocks: validation paths, shape errors, counted ops, built modules.

The closed-form op lists are checked against the built modules here by what needs no tracer
(output shapes, parameter counts, the copies aten really makes); the op-for-op comparison with
the tracer lives in the trace-equivalence tests.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from cost_engine import analyze
from cost_engine.expand import expand_block
from cost_engine.modules import build
from cost_engine.spec import (
    ConvNeXtBlockSpec,
    LinearSpec,
    NetworkSpec,
    NormSpec,
    PatchEmbedSpec,
    RegNetBlockSpec,
    ResNetBasicSpec,
    ResNetBottleneckSpec,
    SpecError,
    TokenPoolSpec,
    TokensSpec,
    TransformerBlockSpec,
    from_dict,
    validate,
)
from cost_engine.summary import summarize


def _ops(spec, shape):
    return expand_block(spec, tuple(shape))[0]


def _paths(spec, shape):
    return [(op.kind, op.module) for op in _ops(spec, shape)]


def _run(spec, shape):
    torch.manual_seed(0)
    module = build(spec, tuple(shape)).eval()
    with torch.no_grad():
        return module, module(torch.randn(*shape))


def _error_paths(exc: pytest.ExceptionInfo) -> list[str]:
    return [e.path for e in exc.value.errors]


# -- validation and shape errors --------------------------------------------------------------
def test_bad_fields_are_named_with_their_paths():
    with pytest.raises(SpecError) as exc:
        from_dict({"kind": "resnet_bottleneck", "width": 64, "groups": 3})
    assert _error_paths(exc) == ["groups"]
    with pytest.raises(SpecError) as exc:
        from_dict({"kind": "transformer", "heads": 0, "mlp_ratio": -1, "act": "swishy"})
    assert sorted(_error_paths(exc)) == ["act", "heads", "mlp_ratio"]
    with pytest.raises(SpecError) as exc:
        from_dict({"kind": "token_pool", "mode": "max"})
    assert _error_paths(exc) == ["mode"]
    with pytest.raises(SpecError) as exc:
        from_dict({"kind": "patch_embed", "out_channels": 0, "patch_size": 65})
    assert sorted(_error_paths(exc)) == ["out_channels", "patch_size"]
    assert [e.path for e in validate(RegNetBlockSpec(out_channels=48, group_width=32))] == ["group_width"]


def test_nested_errors_carry_the_network_path():
    net = {"kind": "network", "stages": [[{"kind": "resnet_basic", "out_channels": 64},
                                          {"kind": "convnext", "kernel_size": 4}]]}
    with pytest.raises(SpecError) as exc:
        from_dict(net)
    assert _error_paths(exc) == ["stages[0][1].kernel_size"]


def _vit_net(dim: int, heads: int, resolution: int = 32) -> NetworkSpec:
    return NetworkSpec(stem=(PatchEmbedSpec(out_channels=dim, patch_size=8), TokensSpec()),
                       stages=((TransformerBlockSpec(heads=2), TransformerBlockSpec(heads=heads)),),
                       head=(NormSpec(), TokenPoolSpec(), LinearSpec(out_features=10)), resolution=resolution)


def test_heads_must_divide_the_token_dim():
    with pytest.raises(SpecError) as exc:
        analyze(_vit_net(30, 4))
    assert _error_paths(exc) == ["stages[0][1].heads"]
    assert "must divide the token dim (30)" in str(exc.value)
    assert analyze(_vit_net(32, 4)).macs > 0


def test_blocks_reject_the_wrong_rank():
    net = NetworkSpec(stem=(PatchEmbedSpec(out_channels=16, patch_size=4),),
                      stages=((TransformerBlockSpec(heads=2),),), resolution=16)
    with pytest.raises(SpecError) as exc:
        analyze(net)
    assert _error_paths(exc) == ["stages[0][0].kind"]
    tokens_then_conv = NetworkSpec(stem=(PatchEmbedSpec(out_channels=16, patch_size=4), TokensSpec()),
                                   stages=((ConvNeXtBlockSpec(),),), resolution=16)
    with pytest.raises(SpecError) as exc:
        analyze(tokens_then_conv)
    assert _error_paths(exc) == ["stages[0][0].kind"]
    with pytest.raises(SpecError) as exc:
        analyze(NetworkSpec(stem=(PatchEmbedSpec(out_channels=8, patch_size=32),), resolution=16))
    assert _error_paths(exc) == ["stem[0].patch_size"]


# -- ResNet -------------------------------------------------------------------------------------
def test_bottleneck_is_torchvision_v1_5():
    ops = _ops(ResNetBottleneckSpec(width=64, stride=2), (1, 256, 56, 56))
    convs = [op for op in ops if op.kind == "conv2d"]
    assert [(op.module, op.weights[0], op.attr("stride")) for op in convs] == [
        ("conv1.conv", (64, 256, 1, 1), (1, 1)),
        ("conv2.conv", (64, 64, 3, 3), (2, 2)),  # v1.5: the stride sits on the 3x3
        ("conv3.conv", (256, 64, 1, 1), (1, 1)),
        ("downsample.conv", (256, 256, 1, 1), (2, 2)),
    ]
    assert [op.kind for op in ops[-2:]] == ["add", "relu"]
    assert ops[-2].module_type == "ResNetBottleneck" and ops[-1].module == "relu"


@pytest.mark.parametrize(("spec", "in_channels", "projects"), [
    (ResNetBottleneckSpec(width=64), 256, False),
    (ResNetBottleneckSpec(width=64), 64, True),  # channels change
    (ResNetBasicSpec(out_channels=64), 64, False),
    (ResNetBasicSpec(out_channels=64, stride=2), 64, True),  # stride changes the shape
    (ResNetBasicSpec(out_channels=128), 64, True),
])
def test_projection_shortcut_only_when_the_shape_changes(spec, in_channels, projects):
    paths = _paths(spec, (1, in_channels, 8, 8))
    assert any(m.startswith("downsample") for _, m in paths) is projects


# -- RegNet -------------------------------------------------------------------------------------
def test_regnet_y_block_widths_groups_and_se():
    spec = RegNetBlockSpec(out_channels=104, stride=2, group_width=8, se_ratio=0.25)
    ops = _ops(spec, (1, 48, 56, 56))
    by_module = {op.module: op for op in ops}
    assert by_module["f.b.conv"].attr("groups") == 104 // 8
    assert by_module["f.b.conv"].attr("stride") == (2, 2)
    assert by_module["f.se.reduce"].weights[0] == (12, 104, 1, 1)  # round(w_in * 0.25) of the *input*
    assert by_module["f.se.expand"].weights == ((104, 12, 1, 1), (104,))
    assert ops[0].module == "proj.conv"  # proj(x) + f(x): the projection runs first
    assert [op.kind for op in ops[-2:]] == ["add", "relu"]


def test_regnet_x_block_bottleneck_ratio_and_identity_shortcut():
    ops = _ops(RegNetBlockSpec(out_channels=64, group_width=16, bottleneck_ratio=0.5), (1, 64, 8, 8))
    by_module = {op.module: op for op in ops}
    assert by_module["f.a.conv"].weights[0] == (32, 64, 1, 1)
    assert by_module["f.b.conv"].attr("groups") == 2
    assert not any(op.module.startswith(("proj", "f.se")) for op in ops)


# -- ConvNeXt -----------------------------------------------------------------------------------
def test_convnext_block_ops_and_no_copies():
    ops = _ops(ConvNeXtBlockSpec(), (2, 96, 14, 14))
    assert [(op.kind, op.module) for op in ops] == [
        ("conv2d", "dwconv"), ("layer_norm", "norm"), ("linear", "pwconv1"), ("gelu", "act"),
        ("linear", "pwconv2"), ("mul", ""), ("add", ""),
    ]
    assert ops[0].attr("groups") == 96 and ops[0].weights == ((96, 1, 7, 7), (96,))
    assert ops[2].inputs == ((2 * 14 * 14, 96),) and ops[2].outputs == ((2 * 14 * 14, 384),)
    assert ops[5].weights == ((96, 1, 1),)
    no_scale = _ops(ConvNeXtBlockSpec(layer_scale=False), (2, 96, 14, 14))
    assert "mul" not in [op.kind for op in no_scale]


# -- transformer --------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "length", "dim", "heads"), [(1, 197, 192, 3), (2, 50, 64, 4), (3, 7, 12, 1)])
def test_attention_macs_include_qkt_and_av(n, length, dim, heads):
    ops = _ops(TransformerBlockSpec(heads=heads), (n, length, dim))
    matmuls = [op for op in ops if op.kind == "matmul"]
    assert [(op.inputs, op.outputs) for op in matmuls] == [
        (((n * heads, length, dim // heads), (n * heads, dim // heads, length)), ((n * heads, length, length),)),
        (((n * heads, length, length), (n * heads, length, dim // heads)), ((n * heads, length, dim // heads),)),
    ]
    s = summarize(ops)
    assert s.by_kind["matmul"].macs == 2 * n * length * length * dim
    hidden = 4 * dim
    assert s.by_kind["linear"].macs == n * length * (3 * dim * dim + dim * dim + 2 * dim * hidden)
    assert s.by_kind["softmax"].ops == 1 and s.by_kind["layer_norm"].ops == 2


def test_attention_op_order():
    ops = _ops(TransformerBlockSpec(heads=4), (2, 10, 32))
    assert [(op.kind, op.module) for op in ops] == [
        ("layer_norm", "norm1"), ("linear", "attn.qkv"), ("copy", "attn"), ("copy", "attn"),
        ("matmul", "attn"), ("mul", "attn"), ("softmax", "attn"), ("copy", "attn"), ("matmul", "attn"),
        ("copy", "attn"), ("linear", "attn.proj"), ("add", ""), ("layer_norm", "norm2"),
        ("linear", "mlp.fc1"), ("gelu", "mlp.act"), ("linear", "mlp.fc2"), ("add", ""),
    ]
    assert {op.module_type for op in ops if op.module == "attn"} == {"Attention"}
    assert ops[-1].module_type == "TransformerBlock"


class _CountClones(TorchDispatchMode):
    """How many materializing copies aten makes (what the expansion must list as ``copy``)."""

    def __init__(self) -> None:
        super().__init__()
        self.clones = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.clone, torch.ops.aten.contiguous, torch.ops.aten.copy_,
                                   torch.ops.aten._reshape_copy):
            self.clones += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(("n", "length", "heads", "head_dim"), [
    (1, 5, 1, 8), (1, 5, 2, 8), (2, 5, 1, 8), (2, 5, 2, 8), (2, 1, 2, 8), (1, 1, 1, 8), (3, 4, 4, 8),
    (2, 7, 2, 1), (1, 7, 4, 1),  # a head dim of 1 never blocks the merge view
])
def test_attention_copies_are_the_ones_aten_makes(n, length, heads, head_dim):
    spec = TransformerBlockSpec(heads=heads)
    shape = (n, length, head_dim * heads)
    expected = sum(op.kind == "copy" for op in _ops(spec, shape))
    if head_dim == 1 and heads > 1 and length > 1 and n > 1:
        # the merged view is not contiguous and cannot fold to 2-D: proj's aten.linear copies it internally
        expected += 1
    module = build(spec, shape)
    counter = _CountClones()
    with torch.no_grad(), counter:
        module(torch.randn(*shape))
    assert counter.clones == expected


def test_convnext_copies_are_the_ones_aten_makes():
    shape = (2, 16, 6, 6)
    counter = _CountClones()
    module = build(ConvNeXtBlockSpec(), shape)
    with torch.no_grad(), counter:
        module(torch.randn(*shape))
    assert counter.clones == 0 == sum(op.kind == "copy" for op in _ops(ConvNeXtBlockSpec(), shape))


def test_tokens_class_token_and_position_embedding():
    ops = _ops(TokensSpec(), (2, 192, 14, 14))
    assert [(op.kind, op.inputs, op.weights, op.outputs) for op in ops] == [
        ("concat", ((2, 196, 192),), ((1, 1, 192),), ((2, 197, 192),)),
        ("add", ((2, 197, 192),), ((1, 197, 192),), ((2, 197, 192),)),
    ]
    assert _ops(TokensSpec(class_token=False, pos_embed=False), (2, 192, 14, 14)) == ()
    mean = _ops(TokenPoolSpec(mode="mean"), (2, 196, 192))
    assert [(op.kind, op.outputs) for op in mean] == [("mean", ((2, 192),))]
    assert _ops(TokenPoolSpec(), (2, 197, 192)) == ()  # x[:, 0] is a view


# -- every kind: the built module has the expansion's output shape and parameters ---------------------
CASES = [
    (ResNetBasicSpec(out_channels=16, stride=2), (2, 8, 9, 9)),
    (ResNetBasicSpec(out_channels=8), (1, 8, 5, 5)),
    (ResNetBottleneckSpec(width=8, stride=2, groups=2), (2, 16, 7, 7)),
    (ResNetBottleneckSpec(width=4, expansion=4), (1, 16, 6, 6)),
    (RegNetBlockSpec(out_channels=24, stride=2, group_width=8, se_ratio=0.25), (2, 16, 8, 8)),
    (RegNetBlockSpec(out_channels=16, group_width=4, bottleneck_ratio=0.5), (1, 16, 5, 5)),
    (ConvNeXtBlockSpec(kernel_size=3, mlp_ratio=2.0), (2, 12, 5, 5)),
    (TransformerBlockSpec(heads=3, mlp_ratio=2.5, act="relu", qkv_bias=False), (2, 7, 12)),
    (PatchEmbedSpec(out_channels=6, patch_size=4), (2, 3, 9, 9)),
    (TokensSpec(), (2, 6, 3, 4)),
    (TokensSpec(class_token=False), (1, 6, 3, 4)),
    (TokenPoolSpec(), (2, 5, 6)),
    (TokenPoolSpec(mode="mean"), (2, 5, 6)),
]


@pytest.mark.parametrize(("spec", "shape"), CASES, ids=lambda v: getattr(v, "kind", str(v)))
def test_built_block_matches_the_expansion(spec, shape):
    ops, _, out_shape = expand_block(spec, shape)
    module, y = _run(spec, shape)
    assert tuple(y.shape) == out_shape
    assert sum(p.numel() for p in module.parameters()) == sum(
        sum(torch.Size(w).numel() for w in op.weights) for op in ops)
    assert type(module).__name__ == {
        "resnet_basic": "ResNetBasicBlock", "resnet_bottleneck": "ResNetBottleneck", "regnet": "RegNetBlock",
        "convnext": "ConvNeXtBlock", "transformer": "TransformerBlock", "patch_embed": "PatchEmbed",
        "tokens": "Tokens", "token_pool": "TokenPool"}[spec.kind]


def test_attention_computes_softmax_attention():
    """The explicit attention equals torch's reference scaled-dot-product attention."""
    spec = TransformerBlockSpec(heads=2)
    module, _ = _run(spec, (2, 5, 8))
    attn = module.attn
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        q, k, v = attn.qkv(x).reshape(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 5, 8)
        torch.testing.assert_close(attn(x), attn.proj(ref))


# -- the tracer sees exactly the expansion --------------------------------------------------------
ATTENTION_LAYOUTS = [(TransformerBlockSpec(heads=h), (n, length, hd * h)) for n, length, h, hd in [
    (1, 5, 1, 8), (1, 5, 2, 8), (2, 5, 1, 8), (2, 5, 2, 8), (2, 1, 2, 8), (1, 1, 1, 8), (2, 7, 2, 1), (3, 2, 4, 1)]]


@pytest.mark.parametrize(("spec", "shape"), CASES + ATTENTION_LAYOUTS, ids=lambda v: getattr(v, "kind", str(v)))
def test_trace_of_the_built_block_equals_the_expansion(spec, shape):
    trace = pytest.importorskip("cost_engine.trace")
    expanded = _ops(spec, shape)
    traced = trace.trace_ops(build(spec, shape), shape, strict=True)
    assert [op.comparable() for op in traced] == [op.comparable() for op in expanded]
    assert [(op.input_ids, op.output_ids) for op in traced] == [(op.input_ids, op.output_ids) for op in expanded]
    a, b = summarize(expanded), summarize(traced)
    assert (a.totals, a.peak_elements, a.fused_access) == (b.totals, b.peak_elements, b.fused_access)
