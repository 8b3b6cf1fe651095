"""Kernel units timed on a device, through the cache: the training data of a learned latency
predictor (issue #11), measured with the same paired protocol and worker as everything else.

Each distinct unit (``Kernel.identity``: shapes, attrs, dtype, layout; not where in a network
it sits) is timed once per settings and device fingerprint, alternately with the reference rung
of its size and kind (``reference.reference_for_seconds``), in fresh worker sessions, and stored under
its own key (:data:`~cost_engine.latency.keys.KIND_KERNEL`) like a block of the lookup table.
"""

from __future__ import annotations

from typing import Any

from cost_engine.latency.fingerprint import check_device, fingerprint
from cost_engine.latency.kernel_build import unit_payload
from cost_engine.latency.kernels import Kernel, nominal
from cost_engine.latency.keys import KIND_KERNEL, entry_key
from cost_engine.latency.measure import Item, cached_results, measure_items
from cost_engine.latency.protocol import Protocol
from cost_engine.latency.result import LatencyResult
from cost_engine.latency.settings import LatencySettings
from cost_engine.spec.blocks import ConvSpec

#: units are many and short: the block table's protocol (a shorter cap, two sessions)
KERNEL_PROTOCOL = Protocol(warmup_s=0.1, min_warmup_calls=3, max_warmup_s=1.0, time_cap_s=0.3, min_runs=10,
                           rel_ci=0.02)
KERNEL_SESSIONS = 2
#: ``Item.spec`` is unused for a unit; a placeholder keeps the dataclass's type
_PLACEHOLDER = ConvSpec(out_channels=1)


def unit_key(kernel: Kernel, resolved: LatencySettings, fp: dict[str, Any]) -> str:
    payload = unit_payload(kernel)
    shape_only = {"type": payload["type"], "ops": [{k: v for k, v in op.items() if k not in ("input_ids", "output_ids")}
                                                   for op in payload["ops"]]}
    return entry_key(KIND_KERNEL, shape_only, {"settings": resolved.for_block(), "fingerprint": fp})


def unit_item(kernel: Kernel, resolved: LatencySettings, fp: dict[str, Any]) -> Item:
    return Item(_PLACEHOLDER, kernel.ops[0].inputs[0], unit_key(kernel, resolved, fp), KIND_KERNEL, kernel.type,
                unit=unit_payload(kernel), nominal=nominal(kernel))


def measure_units(kernels: list[Kernel], settings: LatencySettings | None = None, *, cache: Any = None,
                  sessions: int = KERNEL_SESSIONS, protocol: Protocol = KERNEL_PROTOCOL,
                  measure_missing: bool = True, remeasure_noisy: bool = False) -> list[LatencyResult | None]:
    """The measured latency of each unit (input order; identical units timed once). Stored
    ones are served; with ``measure_missing=False`` a unit never timed is ``None``.

    A stored unit whose figure is noisy is served as it is unless ``remeasure_noisy``: a unit
    is tens of microseconds, often outside the 5% bound a network's figure is held to, and the
    model learns across hundreds of them, so re-timing each on every refit would cost a fit's
    worth of measurements for little."""
    resolved = (settings or LatencySettings()).resolved()
    check_device(resolved.device)
    fp = fingerprint(resolved.device, resolved.threads)
    items = [unit_item(k, resolved, fp) for k in kernels]
    unique = list({it.key: it for it in items}.values())
    table = cached_results(cache, [it.key for it in unique], final_only=remeasure_noisy)
    todo = [it for it in unique if it.key not in table]
    if measure_missing and todo:
        done = measure_items(todo, resolved, fp, cache=cache, sessions=sessions, protocol=protocol)
        table.update({it.key: r for it, r in zip(todo, done, strict=True)})
    return [table.get(it.key) for it in items]
