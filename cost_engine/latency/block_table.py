"""The block lookup table (ProxylessNAS / Once-for-All): each distinct block measured once.

A network's latency is predicted as the sum of its blocks' latencies, each block — spec, input
shape, settings, device fingerprint — timed once in isolation and cached. A NAS space of 10^19
networks is built from a few hundred distinct blocks, so after the table is filled a prediction
is a handful of cache reads. The sum misses what happens *between* blocks (cache reuse of one
block's output by the next, allocator effects), which the learned residual in ``predict.py``
corrects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cost_engine.expand.network import network_blocks
from cost_engine.latency.keys import KIND_BLOCK
from cost_engine.latency.measure import Item, block_key, cached_results, measure_items
from cost_engine.latency.protocol import Protocol
from cost_engine.latency.result import LatencyResult
from cost_engine.latency.settings import LatencySettings
from cost_engine.ops import Shape
from cost_engine.spec.base import Spec

#: blocks are many and each is only an ingredient of a prediction: a shorter protocol, but two
#: sessions (fresh processes, the second timing the blocks in reverse order): with one session a
#: slow minute of the host lands on whichever blocks were timed then, and the table's sums lost
#: half their rank agreement with measured networks (benchmarks/latency_prediction.py)
BLOCK_PROTOCOL = Protocol(warmup_s=0.1, min_warmup_calls=3, max_warmup_s=1.0, time_cap_s=0.3, min_runs=10,
                          rel_ci=0.02)
BLOCK_SESSIONS = 2


class MissingBlocks(LookupError):
    """Blocks absent from the table when measuring them was not allowed."""

    def __init__(self, count: int):
        self.count = count
        super().__init__(f"{count} block(s) are not in the lookup table yet")


@dataclass
class TableEstimate:
    total_ms: float
    uncertainty_ms: float
    blocks: int
    new_blocks: int


def table_items(spec: Spec, shape: Shape, resolved: LatencySettings, fp: dict[str, Any]) -> list[Item]:
    return [Item(b.spec, b.input_shape, block_key(b.spec, b.input_shape, resolved, fp), KIND_BLOCK,
                 b.module or b.spec.kind) for b in network_blocks(spec, shape)]


def table_estimates(prepared: list[tuple[Spec, Shape]], resolved: LatencySettings, fp: dict[str, Any], *,
                    cache: Any, measure_missing: bool = True, sessions: int = BLOCK_SESSIONS,
                    protocol: Protocol = BLOCK_PROTOCOL) -> tuple[list[TableEstimate], int]:
    """The table sum of each (spec, input shape), and how many blocks had to be measured.

    All missing blocks of all candidates are timed together in the same worker sessions.
    """
    per_candidate = [table_items(spec, shape, resolved, fp) for spec, shape in prepared]
    unique: dict[str, Item] = {}
    for items in per_candidate:
        for it in items:
            unique.setdefault(it.key, it)
    table: dict[str, LatencyResult] = cached_results(cache, list(unique))
    missing = [it for k, it in unique.items() if k not in table]
    if missing and not measure_missing:
        raise MissingBlocks(len(missing))
    if missing:
        for it, res in zip(missing, measure_items(missing, resolved, fp, cache=cache, sessions=sessions,
                                                  protocol=protocol), strict=True):
            table[it.key] = res
    new = {it.key for it in missing}
    out = []
    for items in per_candidate:
        total = sum(table[it.key].median_ms for it in items)
        unc = math.sqrt(sum(table[it.key].uncertainty_ms ** 2 for it in items))
        out.append(TableEstimate(total, unc, len(items), sum(1 for it in items if it.key in new)))
    return out, len(missing)
