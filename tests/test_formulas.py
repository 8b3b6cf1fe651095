"""The formula registry and the summaries built on it (hand-computed expectations)."""

from __future__ import annotations

import pytest

from cost_engine.expand import Emitter
from cost_engine.formulas import FORMULAS, UnknownOpError, formula, op_cost
from cost_engine.ops import Op
from cost_engine.summary import summarize


def _conv(c1: int, c2: int, h: int, w: int, k: int = 1, groups: int = 1, bias: bool = False) -> list[Op]:
    em = Emitter()
    x = em.tensor((1, c1, h, w))
    em.conv2d(x, c2, k, groups=groups, bias=bias)
    return em.ops


def test_pointwise_conv_memory_access_is_shufflenet_v2_formula() -> None:
    h, w, c1, c2 = 14, 14, 96, 160
    cost = op_cost(_conv(c1, c2, h, w)[0])
    assert cost.read + cost.written == h * w * (c1 + c2) + c1 * c2
    assert cost.macs == h * w * c1 * c2
    assert cost.flops == 2 * cost.macs


def test_grouped_conv_and_bias() -> None:
    cost = op_cost(_conv(32, 64, 8, 8, k=3, groups=4, bias=True)[0])
    assert cost.macs == 3 * 3 * (32 // 4) * 64 * 8 * 8
    assert cost.flops == 2 * cost.macs + 64 * 8 * 8  # the bias add is a FLOP, not a MAC
    assert cost.params == 3 * 3 * 8 * 64 + 64


def test_depthwise_conv() -> None:
    cost = op_cost(_conv(32, 32, 10, 10, k=5, groups=32)[0])
    assert cost.macs == 25 * 32 * 100


def test_linear_matmul_and_elementwise() -> None:
    em = Emitter()
    x = em.tensor((2, 7, 16))
    y = em.linear(x, 32)
    assert y.shape == (2, 7, 32)
    a = em.tensor((2, 4, 7, 8))
    b = em.tensor((2, 4, 8, 7))
    em.matmul(a, b)
    em.act(y, "silu")
    lin, mm, act = (op_cost(op) for op in em.ops)
    assert lin.macs == 14 * 16 * 32 and lin.flops == 2 * lin.macs + 14 * 32 and lin.params == 16 * 32 + 32
    assert mm.macs == 8 * 7 * 8 * 7
    assert act.flops == 5 * 2 * 7 * 32 and act.macs == 0


def test_views_move_nothing_and_copies_do() -> None:
    em = Emitter()
    x = em.tensor((1, 8, 4, 4))
    a, b = em.split(x, [2, 6])
    em.concat([a, b])
    split, cat = (op_cost(op) for op in em.ops)
    assert (split.read, split.written) == (0, 0)
    assert (cat.read, cat.written) == (128, 128)


def test_unknown_op_is_listed_not_zero() -> None:
    op = Op("aten.fft_fft", ((4,),), ((4,),))
    with pytest.raises(UnknownOpError):
        op_cost(op)
    s = summarize([op])
    assert s.unknown == {"aten.fft_fft": 1}


def test_a_formula_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError):
        formula("conv2d")(lambda op: (0, 0))
    assert "conv2d" in FORMULAS


def test_fused_access_and_peak() -> None:
    em = Emitter()
    x = em.tensor((1, 8, 4, 4))
    y = em.conv2d(x, 16, 1)
    y = em.batch_norm(y)
    y = em.act(y, "relu")
    s = summarize(em.ops)
    # unfused: conv (128 in + 128 w, 256 out), bn (256 + 4*16, 256), relu (256, 256)
    assert s.totals.read + s.totals.written == (128 + 128 + 256) + (256 + 64 + 256) + (256 + 256)
    # fused: input + weights + folded bias, final output only
    assert s.fused_access == 128 + 128 + 16 + 256
    # at the conv: input and output alive; then 2 outputs of 256 at each later op
    assert s.peak_elements == 512


def test_build_returns_an_inference_module() -> None:
    import cost_engine

    assert cost_engine.build("mobilenet_v2").training is False
