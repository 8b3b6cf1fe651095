"""What a request asks about, as plain types: the context, the limits, a standalone block.

Part of the contract (imports only ``cost_engine.spec`` and the engine's dtype table): the
converters, the servicer, the clients and the oracle core all build or read these values, and
none of them should need the cache, the engine's analysis or the latency layer to do it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from cost_engine.context import context_errors
from cost_engine.spec.base import Spec

__all__ = ["LATENCY_METHODS", "LATENCY_MODES", "MEMORY_FORMATS", "BlockCandidate", "Candidate", "Context", "Limits",
           "is_int"]

LATENCY_MODES = ("none", "measure", "predict", "auto")
#: "default": the kernel model once fitted for the settings on the device, else the block table
LATENCY_METHODS = ("default", "block_table", "roofline", "flops", "kernel")
MEMORY_FORMATS = ("contiguous", "channels_last")
_DEVICE_RE = re.compile(r"^(cpu|cuda(:(0|[1-9][0-9]{0,2}))?)$")


# -- request data ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Context:
    """What the costs are computed for; ``device`` .. ``cudnn_benchmark`` only select latency."""

    batch_size: int = 1
    resolution: int | None = None
    dtype: str = "float32"
    device: str = ""
    latency: str = "none"
    threads: int | None = None
    memory_format: str = "contiguous"
    compile: bool = False
    latency_method: str = "default"
    cudnn_benchmark: bool = False
    cold_l2: bool = False
    cuda_graphs: bool = False
    never_measure: bool = False

    def validate(self, path: str = "context") -> list[tuple[str, str]]:
        errors: list[tuple[str, str]] = [(f"{path}.{e.path}", e.reason) for e in
                                         context_errors(self.batch_size, self.resolution, self.dtype)]
        if self.latency not in LATENCY_MODES:
            errors.append((f"{path}.latency", f"must be one of {', '.join(LATENCY_MODES)}; got {self.latency!r}"))
        if self.latency_method not in LATENCY_METHODS:
            errors.append((f"{path}.latency_method",
                           f"must be one of {', '.join(LATENCY_METHODS)}; got {self.latency_method!r}"))
        if self.memory_format not in MEMORY_FORMATS:
            errors.append((f"{path}.memory_format",
                           f"must be one of {', '.join(MEMORY_FORMATS)}; got {self.memory_format!r}"))
        if self.threads is not None and (not is_int(self.threads) or not 1 <= self.threads <= 1024):
            errors.append((f"{path}.threads", f"must be an integer in [1, 1024], got {self.threads!r}"))
        if not isinstance(self.device, str) or not (self.device == "" or _DEVICE_RE.match(self.device)):
            errors.append((f"{path}.device", f"must be cpu, cuda or cuda:N, got {self.device!r}"))
        return errors

    @property
    def wants_latency(self) -> bool:
        return self.latency not in ("none", "")

    def analytic(self) -> Context:
        """This context without latency (what an analytic-only step computes)."""
        return dataclasses.replace(self, latency="none") if self.wants_latency else self


@dataclass(frozen=True)
class BlockCandidate:
    """A single block costed on its own: needs its input channels (and ``Context.resolution``)."""

    block: Spec
    in_channels: int


Candidate = Spec | str | BlockCandidate


@dataclass(frozen=True)
class Limits:
    """Request limits; over any of them is RESOURCE_EXHAUSTED (with the limit's name)."""

    max_batch_size: int = 10_000
    max_sweep_size: int = 20_000
    max_message_bytes: int = 64 << 20
    max_pending_measurements: int = 64
    default_chunk_size: int = 256



def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
