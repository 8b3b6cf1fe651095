"""The one check of an analytic context (batch size, resolution, dtype, a block's input channels).

``analyze`` raises it as a :class:`SpecError`; the service's ``Context.validate`` reports the same
violations under ``context.``, so the Python API and a gRPC call refuse a context in the same
words."""

from __future__ import annotations

from typing import Any

from cost_engine.report import DTYPE_BYTES
from cost_engine.spec.base import MAX_BATCH, MAX_CHANNELS, MAX_RESOLUTION, FieldError

__all__ = ["LATENCY_DTYPES", "context_errors"]

#: the dtypes latency can be timed in (analytic costs take every dtype of ``DTYPE_BYTES``)
LATENCY_DTYPES = ("float32", "float16", "bfloat16")


def _int_in(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def context_errors(batch_size: Any, resolution: Any, dtype: Any, in_channels: Any = None) -> list[FieldError]:
    """Every bad field of the context (``resolution`` and ``in_channels`` may be None)."""
    errors = []
    if not _int_in(batch_size, 1, MAX_BATCH):
        errors.append(FieldError("batch_size", f"must be an integer in [1, {MAX_BATCH}], got {batch_size!r}"))
    if resolution is not None and not _int_in(resolution, 1, MAX_RESOLUTION):
        errors.append(FieldError("resolution", f"must be an integer in [1, {MAX_RESOLUTION}], got {resolution!r}"))
    if dtype not in DTYPE_BYTES:
        errors.append(FieldError("dtype", f"must be one of {', '.join(DTYPE_BYTES)}; got {dtype!r}"))
    if in_channels is not None and not _int_in(in_channels, 1, MAX_CHANNELS):
        errors.append(FieldError("in_channels", f"must be in [1, {MAX_CHANNELS}], got {in_channels!r}"))
    return errors
