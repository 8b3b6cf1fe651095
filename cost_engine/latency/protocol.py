"""The timing loop (runs inside a measurement worker process; see ``worker.py``).

The published protocol, version :data:`~cost_engine.latency.keys.PROTOCOL_VERSION`:

1. The first call is timed on its own and reported as ``first_call_ms``, never as a sample (it
   pays for lazy initialization, oneDNN primitive creation, cuDNN autotuning or compilation).
2. Warm-up is time-based: calls until ``warmup_s`` has passed and at least ``min_warmup_calls``
   ran — a fixed call count is too short for a slow network and needlessly long for a fast one —
   and, up to ``max_warmup_s``, until a call causes no new page faults (the heap has grown to
   its steady size; ``warmup_steady`` reports whether that was reached).
3. One sample times ``number`` back-to-back calls (``number`` chosen after warm-up so a sample
   lasts at least ``min_sample_s``; 1 for anything slower), divided by ``number``: timer
   resolution never dominates. CPU: ``time.perf_counter``. CUDA: events around the calls and a
   synchronize before reading them, so asynchronous launches are never mistaken for work done.
4. Sampling continues until the 95% confidence interval of the median (binomial order
   statistics, distribution-free) is narrower than ``rel_ci`` of the median on each side, or
   ``time_cap_s`` of sampling has passed, or ``max_runs`` samples exist. Which one stopped it is
   reported (``stopped``).
5. On the CPU each sample also records the process CPU time (all threads) of its calls. It is
   not the measurement — latency is wall time — but with one thread, wall / CPU time above 1
   is time the process spent waiting for a core: contention from other processes, reported
   (``contention``) so a number timed on a busy host says so.
6. Minor page faults of the whole process (``getrusage``) over the sampling phase, divided by
   the calls made, are reported: a steady state allocates nothing new, so anything above ~0
   means the allocator is returning and re-faulting memory each call (the glibc trap the worker
   environment defeats).
"""

from __future__ import annotations

import math
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Protocol:
    """Knobs of the timing loop; part of every result (and of nothing else: not of the key,
    because a time cap only trades precision for time, it does not change what is timed)."""

    warmup_s: float = 0.3
    min_warmup_calls: int = 3
    max_warmup_s: float = 2.0
    time_cap_s: float = 2.0
    min_runs: int = 10
    max_runs: int = 20000
    rel_ci: float = 0.01
    min_sample_s: float = 2e-4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Protocol:
        return cls(**data)


def median_ci(sorted_samples: list[float], z: float = 1.96) -> tuple[float, float]:
    """Distribution-free ~95% confidence interval of the median from order statistics."""
    n = len(sorted_samples)
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half))
    return sorted_samples[lo], sorted_samples[hi]


def percentile(sorted_samples: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of already sorted samples."""
    if not sorted_samples:
        return float("nan")
    pos = (len(sorted_samples) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_samples) - 1)
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (pos - lo)


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class _CpuClock:
    """Wall time (``perf_counter``: the measurement) and process CPU time (a diagnostic)."""

    def __init__(self) -> None:
        self.last_cpu = 0.0

    def time(self, fn: Callable[[], Any], number: int) -> float:
        c0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        t1 = time.perf_counter()
        self.last_cpu = time.process_time() - c0
        return t1 - t0


class _CudaClock:
    last_cpu = 0.0

    def __init__(self, device: Any):
        import torch

        self.torch = torch
        self.device = device

    def time(self, fn: Callable[[], Any], number: int) -> float:
        cuda = self.torch.cuda
        start = cuda.Event(enable_timing=True)
        end = cuda.Event(enable_timing=True)
        cuda.synchronize(self.device)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3


def time_call(fn: Callable[[], Any], protocol: Protocol, cuda_device: Any = None) -> dict[str, Any]:
    """Run the protocol on ``fn`` (a zero-argument call of the built module on its input)."""
    clock: Any = _CudaClock(cuda_device) if cuda_device is not None else _CpuClock()
    first = clock.time(fn, 1)

    warm_calls = 0
    warm_faults0 = minor_faults()
    t_start = time.perf_counter()
    last = first
    steady = False
    while True:
        f0 = minor_faults()
        last = clock.time(fn, 1)
        steady = minor_faults() == f0
        warm_calls += 1
        elapsed = time.perf_counter() - t_start
        if warm_calls >= protocol.min_warmup_calls and elapsed >= protocol.warmup_s and (
                steady or elapsed >= max(protocol.max_warmup_s, protocol.warmup_s)):
            break
    warm_faults = minor_faults() - warm_faults0

    number = 1 if last >= protocol.min_sample_s else max(1, min(1000, math.ceil(protocol.min_sample_s / max(last,
                                                                                                            1e-9))))
    samples: list[float] = []
    cpu_samples: list[float] = []
    stopped = "max_runs"
    faults0 = minor_faults()
    t_sampling = time.perf_counter()
    check_every = 1
    while len(samples) < protocol.max_runs:
        samples.append(clock.time(fn, number) / number * 1e3)
        cpu_samples.append(clock.last_cpu / number * 1e3)
        n = len(samples)
        if n >= protocol.min_runs and n % check_every == 0:
            check_every = max(1, n // 10)
            ordered = sorted(samples)
            med = statistics.median(ordered)
            lo, hi = median_ci(ordered)
            if med > 0 and (hi - lo) / 2 <= protocol.rel_ci * med:
                stopped = "converged"
                break
        if n >= protocol.min_runs and time.perf_counter() - t_sampling >= protocol.time_cap_s:
            stopped = "time_cap"
            break
    faults = minor_faults() - faults0
    calls = len(samples) * number
    return {
        "samples_ms": samples,
        "cpu_samples_ms": cpu_samples if cuda_device is None else [],
        "number": number,
        "first_call_ms": first * 1e3,
        "warmup_calls": warm_calls,
        "warmup_page_faults": warm_faults,
        "warmup_steady": steady,
        "page_faults_per_call": faults / calls,
        "sampling_s": time.perf_counter() - t_sampling,
        "stopped": stopped,
    }


def summarize_samples(samples: list[float]) -> dict[str, float]:
    """Median, p10, p90, coefficient of variation and the median's CI half-width (all in ms)."""
    ordered = sorted(samples)
    mean = statistics.fmean(ordered)
    std = statistics.pstdev(ordered) if len(ordered) > 1 else 0.0
    lo, hi = median_ci(ordered)
    return {
        "median_ms": statistics.median(ordered),
        "p10_ms": percentile(ordered, 0.10),
        "p90_ms": percentile(ordered, 0.90),
        "mean_ms": mean,
        "cv": std / mean if mean > 0 else 0.0,
        "ci_half_ms": (hi - lo) / 2,
        "runs": len(ordered),
    }
