"""Memory admission: does a measurement session of a candidate fit in the device's free memory?

Asked before a measurement is queued, so a candidate the device cannot hold is refused at once
(RESOURCE_EXHAUSTED naming the limit) instead of running a worker into swap or the OOM killer,
or failing inside it minutes later as an internal error. The need is estimated from the
analytic costs, which are exact and cost microseconds once the engine has seen the blocks:

    need = WORKER_BASE_BYTES + weights (candidate + reference) + input
           + ACTIVATION_FACTOR x max(peak activation of candidate, of reference)

The analytic peak counts the tensors alive at once; a real forward pass adds convolution
workspaces, oneDNN's reordered weight copies and the caching allocator's slack. Measured by an
attack harness on this project's CPU worker: a candidate with a 2 GiB analytic peak ran at
5.65 GB peak RSS, i.e. about 2.5x the peak on top of a ~0.6 GB process (torch and its
libraries). The factor is on the safe side of that figure; the estimate is a gate, not a
prediction of RSS, and the free memory it is compared with is the device's now.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from cost_engine.latency.settings import LatencySettings

__all__ = ["ACTIVATION_FACTOR", "WORKER_BASE_BYTES", "available_bytes", "session_bytes"]

#: a CPU worker process before it builds anything (Python, torch, oneDNN), bytes
WORKER_BASE_BYTES = 640 << 20
#: runtime memory per byte of analytic peak activation (see the module docstring)
ACTIVATION_FACTOR = 2.5
#: environment variable that overrides the free memory (bytes): for a host whose free memory the
#: worker cannot see (a container without a cgroup view) or to reserve room for other work
AVAILABLE_ENV = "COST_ORACLE_MEASURE_MEMORY_BYTES"


def session_bytes(candidate: Any, settings: LatencySettings) -> int:
    """Estimated peak memory of one measurement session of ``candidate`` (bytes)."""
    from cost_engine.analyze import analyze
    from cost_engine.latency.measure import prepare
    from cost_engine.latency.reference import reference_for
    from cost_engine.report import DTYPE_BYTES

    spec, resolved, shape = prepare(candidate, settings)
    itemsize = DTYPE_BYTES[resolved.dtype]
    own = analyze(spec, batch_size=shape[0], resolution=shape[-1], dtype=resolved.dtype, in_channels=shape[1])
    ref = reference_for(spec, shape)
    theirs = analyze(ref.spec, batch_size=ref.input_shape[0], resolution=ref.input_shape[-1], dtype=resolved.dtype)
    weights = (own.params + own.buffers + theirs.params + theirs.buffers) * itemsize
    inputs = (_numel(shape) + _numel(ref.input_shape)) * itemsize
    peak = max(own.peak_activation_bytes, theirs.peak_activation_bytes)
    return int(WORKER_BASE_BYTES + weights + inputs + ACTIVATION_FACTOR * peak)


def _numel(shape: Any) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def available_bytes(device: str) -> int | None:
    """Free memory a measurement on ``device`` may use now (bytes); None when it cannot be read."""
    override = os.environ.get(AVAILABLE_ENV)
    if override:
        with contextlib.suppress(ValueError):
            return max(0, int(override))
    if device.startswith("cuda"):
        return _cuda_free(device)
    return _host_free()


def _host_free() -> int | None:
    free: int | None = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
                break
    # a container's own limit binds before the host's free memory does (cgroup v2)
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            room = max(0, int(limit) - used)
            free = room if free is None else min(free, room)
    return free


def _cuda_free(device: str) -> int | None:
    """Free memory of the GPU from ``nvidia-smi`` (MiB): asking torch would create a CUDA context
    in the server process, half a gigabyte of the very memory being measured."""
    from cost_engine.latency.gpu_query import nvidia_smi

    free = nvidia_smi(device.split(":", 1)[1] if ":" in device else "0", ("memory.free",)).get("memory.free")
    try:
        return int(float(free)) << 20 if free is not None else None
    except ValueError:
        return None  # no driver tool: the worker reports what it finds itself
