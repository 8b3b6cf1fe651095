"""What a latency measurement is *of*: the device and everything that changes its timing.

Every field here is part of the latency cache key (with the device fingerprint), because each of
them moves the number: fp16 vs fp32, batch 1 vs 32, 1 thread vs 2, channels-last, compiled or
eager, cuDNN autotuning. ``resolved()`` fills in defaults explicitly (the thread count is the one
the worker will really use), so two requests that will be timed identically get one key.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any

from cost_engine.context import LATENCY_DTYPES
from cost_engine.spec.base import MAX_BATCH, MAX_CHANNELS, MAX_RESOLUTION, FieldError, SpecError

DTYPES = LATENCY_DTYPES
DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16",
                 "float": "float32", "f32": "float32", "f16": "float16"}
MEMORY_FORMATS = ("contiguous", "channels_last")
MAX_THREADS = 1024
_DEVICE_RE = re.compile(r"^(cpu|cuda(:(0|[1-9][0-9]{0,2}))?)$")


class UnknownDevice(ValueError):
    """A well-formed device name that this host does not have (gRPC: FAILED_PRECONDITION)."""

    def __init__(self, device: str, available: list[str]):
        self.device = device
        self.available = list(available)
        super().__init__(f"device {device!r} is not available here; available: {', '.join(available)}")


def usable_cores() -> int:
    """Cores this process may run on (affinity), not the host's count: what threads can use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


#: L2 cache state of a CUDA measurement (see ``LatencySettings.l2``)
L2_MODES = ("warm", "cold")

@dataclass(frozen=True)
class LatencySettings:
    """The measurement context. ``threads=None`` means "all usable cores", resolved up front."""

    device: str = "cpu"
    batch_size: int = 1
    resolution: int | None = None
    dtype: str = "float32"
    threads: int | None = None
    memory_format: str = "contiguous"
    compile: bool = False
    cudnn_benchmark: bool = False
    in_channels: int | None = None
    #: CUDA only: "cold" flushes the L2 cache before every timed call (events around the call
    #: alone, so the flush is never timed), as triton's do_bench and nvbench's cold mode do;
    #: "warm" times back-to-back calls. Part of the key: the two answer different questions.
    l2: str = "warm"
    #: CUDA only: replay the forward pass as a captured CUDA graph (launch overhead removed)
    cuda_graphs: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencySettings:
        """Parse plain data; unknown keys and bad values raise :class:`SpecError` naming each field."""
        if not isinstance(data, dict):
            raise SpecError([FieldError("settings", f"must be an object, got {type(data).__name__}")])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = [FieldError(str(k), "unknown field") for k in data if k not in names]
        if unknown:
            raise SpecError(unknown)
        settings = cls(**data)
        settings.validate()
        return settings

    def errors(self) -> list[FieldError]:
        out: list[FieldError] = []
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            out.append(FieldError("device", f"must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"))
        _int_field(out, "batch_size", self.batch_size, 1, MAX_BATCH)
        if self.resolution is not None:
            _int_field(out, "resolution", self.resolution, 1, MAX_RESOLUTION)
        if self.in_channels is not None:
            _int_field(out, "in_channels", self.in_channels, 1, MAX_CHANNELS)
        if self.threads is not None:
            _int_field(out, "threads", self.threads, 1, MAX_THREADS)
        if canonical_dtype(self.dtype) not in DTYPES:
            out.append(FieldError("dtype", f"must be one of {', '.join(DTYPES)} (or fp32/fp16/bf16), "
                                           f"got {self.dtype!r}"))
        if self.memory_format not in MEMORY_FORMATS:
            out.append(FieldError("memory_format", f"must be one of {', '.join(MEMORY_FORMATS)}, "
                                                   f"got {self.memory_format!r}"))
        if self.l2 not in L2_MODES:
            out.append(FieldError("l2", f"must be one of {', '.join(L2_MODES)}, got {self.l2!r}"))
        for name in ("compile", "cudnn_benchmark", "cuda_graphs"):
            if not isinstance(getattr(self, name), bool):
                out.append(FieldError(name, f"must be true or false, got {getattr(self, name)!r}"))
        return out

    def validate(self) -> None:
        errors = self.errors()
        if errors:
            raise SpecError(errors)

    def resolved(self) -> LatencySettings:
        """Validated, with defaults made explicit: device ``cuda`` -> ``cuda:0``, canonical dtype,
        the thread count the worker will use, and ``cudnn_benchmark``, ``l2`` and ``cuda_graphs``
        at their defaults on the CPU (they have no effect there, so they must not split the cache)."""
        self.validate()
        device = "cuda:0" if self.device == "cuda" else self.device
        threads = self.threads if self.threads is not None else usable_cores()
        cuda = device != "cpu"
        return dataclasses.replace(self, device=device, dtype=canonical_dtype(self.dtype), threads=threads,
                                   cudnn_benchmark=self.cudnn_benchmark and cuda, l2=self.l2 if cuda else "warm",
                                   cuda_graphs=self.cuda_graphs and cuda)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON of the resolved settings (what the cache key and the report carry)."""
        return dataclasses.asdict(self.resolved())

    def for_block(self) -> dict[str, Any]:
        """The settings that matter for a block timed in isolation: its input shape replaces
        batch size, resolution and input channels."""
        d = self.to_dict()
        for name in ("batch_size", "resolution", "in_channels"):
            d.pop(name)
        return d


def canonical_dtype(dtype: Any) -> str:
    if not isinstance(dtype, str):
        return repr(dtype)
    return DTYPE_ALIASES.get(dtype.lower(), dtype.lower())


def _int_field(out: list[FieldError], name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        out.append(FieldError(name, f"must be an integer, got {value!r}"))
    elif not lo <= value <= hi:
        out.append(FieldError(name, f"must be in [{lo}, {hi}], got {value}"))
