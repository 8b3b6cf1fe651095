"""The canary: one small fixed block re-timed at the start and end of every measurement session.

A machine drifts (thermal throttling, a noisy neighbour, a frequency governor, another agent's
test run on a shared host). Re-timing the same tiny block each session puts that drift *in the
result* (``canary.drift`` = this session's canary median / the first canary ever stored for this
fingerprint and settings) instead of hiding it in the numbers; a reader can discount or rerun a
measurement taken while the canary was 1.5x slow.
"""

from __future__ import annotations

from typing import Any

from cost_engine.latency.protocol import Protocol
from cost_engine.spec.blocks import ConvSpec

#: 3x3 conv + BN + ReLU, 32 -> 32 channels at 28x28: ~0.1-0.3 ms on a CPU core, dominated by
#: compute like the networks it stands in for, short enough to cost nothing per session.
CANARY_SPEC = ConvSpec(out_channels=32, kernel_size=3)
CANARY_SHAPE = (1, 32, 28, 28)
CANARY_PROTOCOL = Protocol(warmup_s=0.05, min_warmup_calls=3, max_warmup_s=0.5, time_cap_s=0.15, min_runs=10,
                           rel_ci=0.01)


def canary_item() -> dict[str, Any]:
    return {"id": "canary", "spec": CANARY_SPEC.to_dict(), "input_shape": list(CANARY_SHAPE),
            "protocol": CANARY_PROTOCOL.to_dict()}


def canary_context() -> dict[str, Any]:
    return {"spec": CANARY_SPEC.to_dict(), "input_shape": list(CANARY_SHAPE)}
