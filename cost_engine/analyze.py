"""``analyze``: a candidate and a context in, a :class:`CostReport` out, from memoized blocks."""

from __future__ import annotations

import functools

from cost_engine.context import context_errors
from cost_engine.expand import input_shape_of, network_blocks
from cost_engine.expand.registry import expand_block
from cost_engine.families import resolve
from cost_engine.memo import block_memo_entries
from cost_engine.ops import Shape
from cost_engine.report import CostReport
from cost_engine.spec.base import Spec, SpecError, validate
from cost_engine.summary import Summary, summarize


@functools.lru_cache(maxsize=block_memo_entries())  # bounded in bytes: cost_engine/memo.py
def block_summary(spec: Spec, input_shape: Shape, channels_last: bool = False) -> Summary:
    """A block's summary at an input shape: computed once per process, then a dict lookup."""
    return summarize(expand_block(spec, input_shape, channels_last)[0])


def check_context(batch_size: int, resolution: int | None, dtype: str, in_channels: int | None) -> None:
    errors = context_errors(batch_size, resolution, dtype, in_channels)
    if errors:
        raise SpecError(errors)


def analyze(candidate: Spec | str, *, batch_size: int = 1, resolution: int | None = None,
            dtype: str = "float32", in_channels: int | None = None) -> CostReport:
    """Every static cost of ``candidate`` (a spec or a built-in name) for one batch.

    ``resolution`` defaults to the network's own; a standalone block needs ``resolution`` and
    ``in_channels``. Raises :class:`SpecError` naming every bad field.
    """
    check_context(batch_size, resolution, dtype, in_channels)
    spec = resolve(candidate)
    problems = validate(spec)  # memoized per spec: a search loop's repeats cost a lookup
    if problems:
        raise SpecError(problems)
    shape = input_shape_of(spec, batch_size, resolution, in_channels)
    total = Summary()
    placed = network_blocks(spec, shape)
    for block in placed:
        s = block_summary(block.spec, block.input_shape, block.channels_last)
        total.merge(s, block.module)
    name = candidate if isinstance(candidate, str) else spec.kind
    return CostReport(name, batch_size, shape, placed[-1].output_shape, dtype, total)
