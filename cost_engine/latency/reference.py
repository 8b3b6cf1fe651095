"""The reference networks every measurement is paired with.

A shared host's speed swings with its neighbours (the same EfficientNet-B0 measured 18 ms and
49 ms in two processes here), but two networks timed alternately in one process swing together.
So the candidate is timed interleaved with a fixed reference and the measurement is the ratio
(``protocol.time_paired``). The reference is ResNet-18's shape — plain dense convolutions,
stable, built from our own spec — at the candidate's batch size, one rung of a ladder of widths
and resolutions: the rung whose rough time on a nominal CPU is closest (in log) to the
candidate's, so both take similar time per call and neither dominates the interleaving. The
choice depends on the spec and shape only, never on a timing, so every session of a candidate
pairs it with the same rung.

Versioned: changing the network or the ladder changes every ratio, so it is part of the
protocol version (``keys.PROTOCOL_VERSION``) and of each anchor's key.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from cost_engine.expand.network import network_blocks
from cost_engine.ops import Shape
from cost_engine.spec.base import Spec

REFERENCE_VERSION = "resnet18-ladder-2"
#: (stem width, input resolution) of each rung: ResNet-18's shape (basic blocks 2-2-2-2, widths
#: w, 2w, 4w, 8w), from a 4-microsecond-scale network to a full ResNet-18 at 320 px
LADDER = ((8, 16), (16, 32), (32, 56), (64, 64), (64, 112), (64, 160), (64, 224), (64, 320))
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


def nominal_seconds(spec: Spec, shape: Shape) -> float:
    """A rough time of a spec at an input shape on the nominal CPU (the engine's block memo:
    microseconds once seen), used only to pick a reference of similar size."""
    from cost_engine.analyze import block_summary

    flops, elements, ops = 0, 0, 0
    for b in network_blocks(spec, shape):
        t = block_summary(b.spec, b.input_shape, b.channels_last).totals
        flops += t.flops
        elements += t.read + t.written
        ops += t.ops
    return nominal_time(flops, 4 * elements, ops)


def nominal_time(flops: float, nbytes: float, launches: float) -> float:
    """Seconds on the nominal CPU: the one formula networks and kernel units pick rungs by."""
    peak, bandwidth, per_op = _NOMINAL
    return flops / peak + nbytes / bandwidth + launches * per_op


@functools.cache
def _rung(width: int, resolution: int) -> tuple[Spec, float]:
    from cost_engine.families.resnet import resnet

    spec = resnet((2, 2, 2, 2), widths=(width, 2 * width, 4 * width, 8 * width), block="basic", stem_width=width,
                  resolution=resolution)
    return spec, nominal_seconds(spec, (1, 3, resolution, resolution))


def reference_for(spec: Spec, input_shape: Shape) -> Reference:
    """The reference rung for a candidate at ``input_shape`` (batch taken from it)."""
    return reference_for_seconds(nominal_seconds(spec, input_shape), int(input_shape[0]))


def reference_for_seconds(nominal_s: float, batch: int) -> Reference:
    """The rung for something whose nominal time at ``batch`` is ``nominal_s`` (a kernel unit has
    no spec: its nominal time comes from its own op costs, ``kernels.nominal_seconds``)."""
    per_sample = max(1e-9, nominal_s / batch)
    width, res = min(LADDER, key=lambda r: abs(math.log(_rung(*r)[1] / per_sample)))
    return Reference(f"resnet18-w{width}@{res}", _rung(width, res)[0], (batch, 3, res, res))
