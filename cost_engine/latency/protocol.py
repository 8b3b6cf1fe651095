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
4. Paired (every measurement, :func:`time_paired`): the candidate is timed in blocks that
   alternate with blocks of the device's reference network (``reference.py``), ``R C R ... C R``,
   and each candidate block is divided by the mean of the two reference blocks around it. By
   default a block is one sample (``pair_block``), so the two networks alternate call by call:
   the host's speed changes within a few calls, and only that cancels it. With longer blocks
   a block's figure is the *minimum* of its kept samples (``pair_statistic``), the call least
   interrupted when neighbours time-slice the core. Sampling continues until the 95% CI of the median ratio
   is within ``rel_ci`` of it, or the candidate's share of the time reaches ``time_cap_s``, or
   ``max_pairs``. Diagnostics (:func:`time_call`: the canary, calibration) sample alone until
   the CI of the median is within ``rel_ci``, ``time_cap_s`` or ``max_runs``. Which rule
   stopped it is reported (``stopped``).
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
    #: paired protocol: samples per block (with several, the first of each is dropped), the
    #: block's statistic, and the number of candidate blocks (each bracketed by two reference
    #: blocks). One sample per block, R C R C ...: this host's speed changes within a few calls
    #: (samples of one network swung 25-40 ms from one block of 4 calls to the next), and only
    #: alternating call by call cancels a drift that fast. Measured with latency_repeatability.py
    #: on the same day, same load pattern: worst spread 6.7% with blocks of 1, 11.9% with 5.
    pair_block: int = 1
    pair_statistic: str = "min"
    min_pairs: int = 20
    max_pairs: int = 2000

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
    """Wall time (``perf_counter``: the measurement) and process CPU time (a diagnostic).

    A clock also owns ``now()`` (the loop's own time caps) and ``faults()``, so the whole loop
    runs unchanged on a simulated device (``latency/testing.py``)."""

    def __init__(self) -> None:
        self.last_cpu = 0.0

    @staticmethod
    def now() -> float:
        return time.perf_counter()

    @staticmethod
    def faults() -> int:
        return minor_faults()

    def time(self, fn: Callable[[], Any], number: int) -> float:
        c0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        t1 = time.perf_counter()
        self.last_cpu = time.process_time() - c0
        return t1 - t0


class _CudaClock:
    """CUDA events around the calls, read after a synchronize. With ``flush`` (cold L2), each
    call gets its own pair of events and the flush runs before the first of them, so the
    flush is never part of a sample (triton's ``do_bench`` does the same)."""

    last_cpu = 0.0
    now = staticmethod(time.perf_counter)
    faults = staticmethod(minor_faults)

    def __init__(self, device: Any, flush: Callable[[], Any] | None = None):
        import torch

        self.torch = torch
        self.device = device
        self.flush = flush

    def time(self, fn: Callable[[], Any], number: int) -> float:
        cuda = self.torch.cuda
        cuda.synchronize(self.device)
        if self.flush is not None:
            pairs = []
            for _ in range(number):
                self.flush()
                start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                pairs.append((start, end))
            pairs[-1][1].synchronize()
            return sum(s.elapsed_time(e) for s, e in pairs) / 1e3
        start = cuda.Event(enable_timing=True)
        end = cuda.Event(enable_timing=True)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3


def _clock(clock: Any, cuda_device: Any, flush: Callable[[], Any] | None = None) -> Any:
    if clock is not None:
        return clock
    return _CudaClock(cuda_device, flush) if cuda_device is not None else _CpuClock()


def _warm_up(clock: Any, fns: list[Callable[[], Any]], protocol: Protocol,
             repeat: int = 1) -> tuple[list[float], int, int, bool]:
    """Warm every function (round-robin, ``repeat`` calls each, the pattern sampling will use,
    so none is cold and the heap has met that pattern's allocations) until the protocol's
    warm-up rule holds for a whole round: (last call seconds per fn, rounds, faults, steady)."""
    calls = 0
    faults0 = clock.faults()
    t_start = clock.now()
    last = [0.0] * len(fns)
    quiet_rounds = 0
    while True:
        f0 = clock.faults()
        for i, fn in enumerate(fns):
            for _ in range(repeat):
                last[i] = clock.time(fn, 1)
        quiet_rounds = quiet_rounds + 1 if clock.faults() == f0 else 0
        # two networks' allocations interleave: one quiet round can be luck, two rarely are
        steady = quiet_rounds >= (2 if len(fns) > 1 else 1)
        calls += 1
        elapsed = clock.now() - t_start
        if calls >= protocol.min_warmup_calls and elapsed >= protocol.warmup_s and (
                steady or elapsed >= max(protocol.max_warmup_s, protocol.warmup_s)):
            return last, calls, clock.faults() - faults0, steady


def _calls_per_sample(last_s: float, protocol: Protocol) -> int:
    if last_s >= protocol.min_sample_s:
        return 1
    return max(1, min(1000, math.ceil(protocol.min_sample_s / max(last_s, 1e-9))))


def time_call(fn: Callable[[], Any], protocol: Protocol, cuda_device: Any = None, clock: Any = None,
              flush: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Run the protocol on ``fn`` alone (a zero-argument call of the built module on its
    input): the canary and the calibration kernels, which are diagnostics, not results.
    ``flush``: CUDA cold-L2 mode, run before each timed call outside its events."""
    clock = _clock(clock, cuda_device, flush)
    first = clock.time(fn, 1)
    (last,), warm_calls, warm_faults, steady = _warm_up(clock, [fn], protocol)
    number = _calls_per_sample(last, protocol)
    samples: list[float] = []
    cpu_samples: list[float] = []
    stopped = "max_runs"
    faults0 = clock.faults()
    t_sampling = clock.now()
    check_every = 1
    while len(samples) < protocol.max_runs:
        samples.append(clock.time(fn, number) / number * 1e3)
        cpu_samples.append(clock.last_cpu / number * 1e3)
        n = len(samples)
        if n >= protocol.min_runs and n % check_every == 0:
            check_every = max(1, n // 10)
            if _converged(samples, protocol.rel_ci):
                stopped = "converged"
                break
        if n >= protocol.min_runs and clock.now() - t_sampling >= protocol.time_cap_s:
            stopped = "time_cap"
            break
    faults = clock.faults() - faults0
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
        "sampling_s": clock.now() - t_sampling,
        "stopped": stopped,
    }


def _converged(values: list[float], rel_ci: float) -> bool:
    ordered = sorted(values)
    med = statistics.median(ordered)
    lo, hi = median_ci(ordered)
    return med > 0 and (hi - lo) / 2 <= rel_ci * med


def block_value(samples: list[float], statistic: str) -> float:
    """One block's figure from its kept samples (``min``: the least-disturbed call; ``median``)."""
    return min(samples) if statistic == "min" else statistics.median(samples)


def time_paired(candidate: Callable[[], Any], reference: Callable[[], Any], protocol: Protocol,
                cuda_device: Any = None, clock: Any = None, flush: Callable[[], Any] | None = None) -> dict[str, Any]:
    """The paired protocol: the candidate timed in blocks alternating with blocks of the
    device's reference network, in the same process, ``R C R C ... C R``.

    A block is ``pair_block`` samples of which the first is dropped (when there are several) (the switch from the other
    network costs caches and branch predictors). Each candidate block is divided by the
    mean of the reference blocks on either side of it: a drift of the machine's speed that is
    linear over a pair cancels exactly, a step cancels to first order, and a host that
    is 2x slow for a minute is 2x slow for both. The ratios are the measurement; the candidate's
    own samples are kept as the *raw* figures. Sampling stops when the median ratio's 95% CI is
    within ``rel_ci`` of it (after ``min_pairs``), at ``time_cap_s`` (the candidate's sampling
    time; the reference's runs beside it) or at ``max_pairs``. ``flush``: as in :func:`time_call`.
    """
    clock = _clock(clock, cuda_device, flush)
    first = clock.time(candidate, 1)
    ref_first = clock.time(reference, 1)
    (last_c, last_r), warm_calls, warm_faults, steady = _warm_up(clock, [candidate, reference], protocol,
                                                                 repeat=max(1, protocol.pair_block))
    n_c = _calls_per_sample(last_c, protocol)
    n_r = _calls_per_sample(last_r, protocol)
    keep = max(1, protocol.pair_block - 1)
    c_samples: list[float] = []
    r_samples: list[float] = []
    cpu_samples: list[float] = []
    c_blocks: list[float] = []
    r_blocks: list[float] = []
    ratios: list[float] = []

    block_faults: dict[bool, list[float]] = {True: [], False: []}  # candidate?, faults per call of each block

    def run_block(fn: Callable[[], Any], number: int, out: list[float], cpu: list[float] | None) -> float:
        f0 = clock.faults()
        if protocol.pair_block > 1:
            clock.time(fn, number)  # the dropped first sample of the block
        kept = []
        for _ in range(keep):
            kept.append(clock.time(fn, number) / number * 1e3)
            if cpu is not None:
                cpu.append(clock.last_cpu / number * 1e3)
        out.extend(kept)
        block_faults[fn is candidate].append((clock.faults() - f0) / (number * max(1, protocol.pair_block)))
        return block_value(kept, protocol.pair_statistic)

    faults0 = clock.faults()
    t_sampling = clock.now()
    r_blocks.append(run_block(reference, n_r, r_samples, None))
    stopped = "max_pairs"
    while len(ratios) < protocol.max_pairs:
        c_blocks.append(run_block(candidate, n_c, c_samples, cpu_samples))
        r_blocks.append(run_block(reference, n_r, r_samples, None))
        ratios.append(c_blocks[-1] / ((r_blocks[-2] + r_blocks[-1]) / 2))
        n = len(ratios)
        if n >= protocol.min_pairs and _converged(ratios, protocol.rel_ci):
            stopped = "converged"
            break
        # the cap is on the candidate's share of the time: about half of the elapsed time
        if n >= protocol.min_pairs and (clock.now() - t_sampling) / 2 >= protocol.time_cap_s:
            stopped = "time_cap"
            break
    faults = clock.faults() - faults0
    return {
        "samples_ms": c_samples,
        "cpu_samples_ms": cpu_samples if cuda_device is None else [],
        "ref_samples_ms": r_samples,
        "candidate_blocks_ms": c_blocks,
        "reference_blocks_ms": r_blocks,
        "pair_ratios": ratios,
        "number": n_c,
        "ref_number": n_r,
        "first_call_ms": first * 1e3,
        "ref_first_call_ms": ref_first * 1e3,
        "warmup_calls": warm_calls,
        "warmup_page_faults": warm_faults,
        "warmup_steady": steady,
        # the median candidate block's faults per call: a steady state faults ~0 in every block
        # (the allocator trap faults in all of them); one late heap growth is one block, and
        # shows in the total
        "page_faults_per_call": statistics.median(block_faults[True]),
        "ref_page_faults_per_call": statistics.median(block_faults[False]),
        "page_faults_total": faults,
        "sampling_s": clock.now() - t_sampling,
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
