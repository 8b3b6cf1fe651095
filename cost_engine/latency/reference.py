"""The reference networks every measurement is paired with.

A shared host's speed swings with its neighbours (the same EfficientNet-B0 measured 18 ms and
49 ms in two processes here), but two networks timed alternately in one process swing together
(``protocol.time_paired``): the measurement is the ratio. They swing together only as far as
they are alike. A dense k x k convolution is compute-bound; pointwise and depthwise convs, batch
norms and activations are memory- and dispatch-bound; and a busy neighbour (on a hyperthread
sibling, in the shared cache) slows the two kinds by different factors. Measured under the same
switching load (``latency_repeatability``, 3 sessions per figure, 8 figures), EfficientNet-B0's
ratio to a ResNet-18 rung spread 15.3% and to a MobileNetV2 rung 2.2%; an OFA MBConv network's
13.2% and 3.7%.

So there are two families, each a ladder of sizes built from our own specs:

* ``mobile``: MobileNetV2 (inverted residuals: pointwise convs, a depthwise 3x3, batch norms and
  activations) at a width multiplier and resolution per rung — the op mix of most searched
  networks, and the better partner even of networks with no depthwise conv at all: FasterNet-T0
  spread 4.2% against a ResNet-18 rung and 2.4% against a MobileNetV2 one, a bottleneck-ResNet
  candidate 6.2% and 2.4% (same probe, 6 figures of 3 sessions);
* ``dense``: ResNet-18's shape (basic blocks 2-2-2-2, widths w, 2w, 4w, 8w) at a width and
  resolution per rung, for networks dominated by dense k x k convolutions (ResNet-18/34, VGG),
  and for a dense conv unit of the kernel model.

The family is the one whose own *dense share* (the share of the nominal time in dense k x k
convolutions: 0.92 for ResNet-18, 0.02 for MobileNetV2) is nearest the candidate's; the rung is
the one whose nominal time is nearest (in log) the candidate's, so both take similar time per
call and neither dominates the interleaving. The choice depends on the spec and shape only,
never on a timing, so every session of a candidate pairs it with the same rung.

Versioned: changing a network or a ladder changes every ratio, so it is part of the protocol
version (``keys.PROTOCOL_VERSION``) and of each anchor's key.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cost_engine.expand.network import network_blocks
from cost_engine.expand.registry import expand_block
from cost_engine.formulas import VIEWS, UnknownOpError, op_cost, unknown_op_cost
from cost_engine.ops import Op, Shape, conv_type
from cost_engine.spec.base import Spec

REFERENCE_VERSION = "ladders-3"
#: dense rungs, (stem width, input resolution): from a 0.5 ms-scale network to ResNet-18 at 320 px
LADDER = ((8, 16), (16, 32), (32, 56), (64, 64), (64, 112), (64, 160), (64, 224), (64, 320))
#: mobile rungs, (width multiplier, input resolution): MobileNetV2 from 0.35x at 32 px to 2x at 320 px
MOBILE_LADDER = ((0.35, 32), (0.5, 96), (0.75, 128), (1.0, 160), (1.4, 192), (1.4, 256), (2.0, 320))
FAMILIES = ("mobile", "dense")
#: a nominal CPU for choosing a rung only (never reported): FLOP/s, bytes/s, seconds per op.
#: FLOPs alone would pair a 20 us conv with ResNet-18 at 16 px, which reads 44 MB of weights
#: and takes 5 ms
_NOMINAL = (50e9, 10e9, 5e-6)


@dataclass(frozen=True)
class Reference:
    name: str
    spec: Spec
    input_shape: Shape

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": REFERENCE_VERSION, "input_shape": list(self.input_shape)}


@dataclass(frozen=True)
class Nominal:
    """A rough time on the nominal CPU and the share of it in dense k x k convolutions."""

    seconds: float
    dense_share: float = 0.0


def nominal_time(flops: float, nbytes: float, launches: float) -> float:
    """Seconds on the nominal CPU: the one formula networks and kernel units pick rungs by."""
    peak, bandwidth, per_op = _NOMINAL
    return flops / peak + nbytes / bandwidth + launches * per_op


def is_dense_conv(op: Op) -> bool:
    """A k x k (k > 1) convolution with one group: compute-bound, the ResNet-18 family's kind."""
    return op.kind == "conv2d" and conv_type(op) == "conv"


def nominal_of_ops(ops: Iterable[Op], itemsize: int = 4) -> Nominal:
    """The nominal time of an op list (a block's, a kernel unit's) and its dense share."""
    total = dense = 0.0
    for op in ops:
        if op.kind in VIEWS:
            continue
        try:
            c = op_cost(op)
        except UnknownOpError:  # what the engine's summaries count for it too: its weights read
            c = unknown_op_cost(op)
        t = nominal_time(c.flops, itemsize * (c.read + c.written), 1)
        total += t
        if is_dense_conv(op):
            dense += t
    return Nominal(total, dense / total if total > 0 else 0.0)


@functools.lru_cache(maxsize=65536)
def _block_nominal(spec: Spec, input_shape: Shape, channels_last: bool) -> Nominal:
    return nominal_of_ops(expand_block(spec, input_shape, channels_last)[0])


def nominal(spec: Spec, shape: Shape) -> Nominal:
    """A spec's nominal time at an input shape (memoized per block: microseconds once seen)."""
    total = dense = 0.0
    for b in network_blocks(spec, shape):
        n = _block_nominal(b.spec, b.input_shape, b.channels_last)
        total += n.seconds
        dense += n.seconds * n.dense_share
    return Nominal(total, dense / total if total > 0 else 0.0)


@functools.cache
def _rung(family: str, size: tuple[float, int]) -> tuple[str, Spec, Nominal]:
    """(name, spec, nominal at batch 1) of one rung."""
    if family == "mobile":
        from cost_engine.families.mobilenet import mobilenet_v2

        mult, res = size
        spec: Spec = mobilenet_v2(float(mult), int(res))
        name = f"mobilenetv2-x{mult:g}@{res}"
    else:
        from cost_engine.families.resnet import resnet

        width, res = int(size[0]), int(size[1])
        spec = resnet((2, 2, 2, 2), widths=(width, 2 * width, 4 * width, 8 * width), block="basic",
                      stem_width=width, resolution=res)
        name = f"resnet18-w{width}@{res}"
    return name, spec, nominal(spec, (1, 3, int(size[1]), int(size[1])))


def ladder(family: str) -> tuple[tuple[float, int], ...]:
    return MOBILE_LADDER if family == "mobile" else LADDER


@functools.cache
def family_share(family: str) -> float:
    """The family's own dense share (its middle rung's)."""
    rungs = ladder(family)
    return _rung(family, rungs[len(rungs) // 2])[2].dense_share


def family_for(dense_share: float) -> str:
    """The family whose own dense share is nearest ``dense_share``."""
    return min(FAMILIES, key=lambda f: abs(family_share(f) - dense_share))


def reference_for(spec: Spec, input_shape: Shape) -> Reference:
    """The reference rung for a candidate at ``input_shape`` (batch taken from it)."""
    n = nominal(spec, input_shape)
    return reference_for_seconds(n.seconds, int(input_shape[0]), n.dense_share)


def reference_for_seconds(nominal_s: float, batch: int, dense_share: float = 0.0) -> Reference:
    """The rung for something whose nominal time at ``batch`` is ``nominal_s`` (a kernel unit has
    no spec: its nominal time and share come from its own ops, ``nominal_of_ops``)."""
    family = family_for(dense_share)
    per_sample = max(1e-9, nominal_s / batch)
    size = min(ladder(family), key=lambda r: abs(math.log(_rung(family, r)[2].seconds / per_sample)))
    name, spec, _ = _rung(family, size)
    res = int(size[1])
    return Reference(name, spec, (batch, 3, res, res))
