"""Views of traced modules (issue 13, item 4): each view equals what the real tool prints, to the
unit, or says it cannot (``exact: False`` and why); never a silently different number. The real
fvcore, thop, ptflops and FlopCounterMode run on each reference module here."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("fvcore")
pytest.importorskip("thop")
pytest.importorskip("ptflops")

import torch
from test_trace_real_modules import Aux, RelPos, StdConv, Twice
from test_views import tool_numbers
from torch import nn

from cost_engine import analyze_module
from cost_oracle.contract import convert


class BNAct(nn.BatchNorm2d):
    """timm's BatchNormAct2d: thop counts it through its base class, ptflops not at all."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(super().forward(x))


class Block(nn.Module):
    """Functional code ptflops may or may not see (``F.relu`` is patched, ``torch.relu`` is not)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.relu(self.conv(x))
        return x + torch.matmul(y, y.transpose(-1, -2))


def plain() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


CASES: dict[str, tuple[Any, tuple[int, ...]]] = {
    "plain": (plain, (1, 3, 16, 16)),
    "twice": (Twice, (1, 8, 8, 8)),
    "std_conv": (lambda: StdConv(3, 8, 3, padding=1), (1, 3, 8, 8)),
    "aux_head": (Aux, (2, 8)),
    "rel_pos": (RelPos, (1, 2, 16, 8)),
    "conv1d": (lambda: nn.Sequential(nn.Conv1d(3, 8, 3), nn.ReLU()), (1, 3, 20)),
    "conv3d": (lambda: nn.Conv3d(3, 4, 3), (1, 3, 4, 6, 6)),
    "conv_transpose": (lambda: nn.ConvTranspose2d(8, 4, 2, stride=2), (1, 8, 4, 4)),
    "group_norm": (lambda: nn.Sequential(nn.Conv2d(3, 8, 1), nn.GroupNorm(2, 8)), (1, 3, 8, 8)),
    "upsample": (lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.Upsample(scale_factor=2, mode="bilinear")),
                 (1, 3, 4, 4)),
    "bn_subclass": (lambda: nn.Sequential(nn.Conv2d(3, 8, 1), BNAct(8)), (1, 3, 8, 8)),
    "functional_block": (Block, (1, 8, 4, 4)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_view_of_a_traced_module_is_the_tools_number_or_marked(name: str) -> None:
    make, shape = CASES[name]
    views = analyze_module(make(), shape).to_dict()["views"]
    real = tool_numbers(make(), shape)
    real["ptflops"]["macs"] *= shape[0]  # ptflops counts its own batch-1 input; the view is per batch
    for tool, numbers in real.items():
        mine = views[tool]
        if mine.get("exact", True):
            assert {k: mine[k] for k in numbers} == numbers, f"{tool} on {name}: view {mine} != tool {numbers}"
        else:
            assert mine["reason"], f"{tool} on {name}: marked without a reason"


def test_a_module_of_plain_torch_layers_has_every_view_exact() -> None:
    views = analyze_module(plain(), (1, 3, 16, 16)).to_dict()["views"]
    assert all("exact" not in v for v in views.values())


def test_the_marks_name_the_cause() -> None:
    views = analyze_module(nn.Sequential(nn.Conv2d(3, 8, 1), BNAct(8)), (1, 3, 8, 8)).to_dict()["views"]
    assert "derives from nn.BatchNorm2d" in views["thop"]["reason"]
    assert "exact" not in views["fvcore"] and "exact" not in views["flop_counter_mode"]
    mha = analyze_module(nn.MultiheadAttention(16, 2, batch_first=True), inputs=((1, 4, 16),) * 3)
    assert all(v["exact"] is False and "fast path" in v["reason"] for v in mha.to_dict()["views"].values())


def test_marks_cross_the_wire() -> None:
    d = analyze_module(nn.Sequential(nn.Conv2d(3, 8, 1), BNAct(8)), (1, 3, 8, 8)).to_dict()
    msg = convert.report_to_proto({**d, "cache_key": "k"})
    assert msg.views["thop"].HasField("exact") and not msg.views["thop"].exact
    assert not msg.views["fvcore"].HasField("exact")
    back = convert.report_to_dict(msg)
    assert back["views"] == d["views"]
