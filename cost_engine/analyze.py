"""``analyze``: a candidate and a context in, a :class:`CostReport` out, from memoized blocks."""

from __future__ import annotations

import functools

from cost_engine.expand import input_shape_of, network_blocks
from cost_engine.expand.registry import expand_block
from cost_engine.families import resolve
from cost_engine.memo import block_memo_entries
from cost_engine.ops import Shape
from cost_engine.report import DTYPE_BYTES, CostReport
from cost_engine.spec.base import MAX_BATCH, MAX_CHANNELS, MAX_RESOLUTION, FieldError, Spec, SpecError, validate
from cost_engine.summary import Summary, summarize


@functools.lru_cache(maxsize=block_memo_entries())  # bounded in bytes: cost_engine/memo.py
def block_summary(spec: Spec, input_shape: Shape, channels_last: bool = False) -> Summary:
    """A block's summary at an input shape: computed once per process, then a dict lookup."""
    return summarize(expand_block(spec, input_shape, channels_last)[0])


def check_context(batch_size: int, resolution: int | None, dtype: str, in_channels: int | None) -> None:
    errors = []
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        errors.append(FieldError("batch_size", f"must be an integer in [1, {MAX_BATCH}], got {batch_size!r}"))
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int)
                                   or not 1 <= resolution <= MAX_RESOLUTION):
        errors.append(FieldError("resolution", f"must be an integer in [1, {MAX_RESOLUTION}], got {resolution!r}"))
    if dtype not in DTYPE_BYTES:
        errors.append(FieldError("dtype", f"must be one of {', '.join(DTYPE_BYTES)}; got {dtype!r}"))
    if in_channels is not None and (isinstance(in_channels, bool) or not isinstance(in_channels, int)
                                    or not 1 <= in_channels <= MAX_CHANNELS):
        errors.append(FieldError("in_channels", f"must be in [1, {MAX_CHANNELS}], got {in_channels!r}"))
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
