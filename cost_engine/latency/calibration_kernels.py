"""The child side of a calibration, run inside a measurement worker: the matmuls, copies and tiny
ops whose timings are the device's ceilings (``calibrate.py`` asks for them and caches them).
Apart from ``calibrate.py`` so that the worker imports only what it runs."""

from __future__ import annotations

import statistics
from typing import Any

from cost_engine.latency.protocol import Protocol
from cost_engine.latency.settings import canonical_dtype

__all__ = ["calibrate_in_worker"]


def calibrate_in_worker(torch: Any, device: Any, dtype: str, protocol: Protocol) -> dict[str, Any]:
    """Run the calibration kernels on ``device`` and return their figures."""
    from cost_engine.latency.protocol import time_call

    dt = getattr(torch, canonical_dtype(dtype))
    cuda = device if device.type == "cuda" else None
    itemsize = torch.empty((), dtype=dt).element_size()

    def median_s(fn: Any) -> float:
        with torch.inference_mode():
            return statistics.median(time_call(fn, protocol, cuda_device=cuda)["samples_ms"]) / 1e3

    peak = 0.0
    for n in ((2048, 4096, 8192) if cuda is not None else (256, 512, 1024)):
        a = torch.randn(n, n, device=device, dtype=dt)
        b = torch.randn(n, n, device=device, dtype=dt)
        peak = max(peak, 2 * n**3 / median_s(lambda a=a, b=b: torch.mm(a, b)))
        del a, b

    def copy_bw(nbytes: int) -> float:
        src = torch.randn(nbytes // itemsize, device=device, dtype=dt)
        dst = torch.empty_like(src)
        return 2 * src.numel() * itemsize / median_s(lambda: dst.copy_(src))

    bandwidth = copy_bw((1 << 30) if cuda is not None else (256 << 20))
    cache_bandwidth = copy_bw(256 << 10)

    nn = torch.nn
    x4 = torch.randn(1, 8, 4, 4, device=device, dtype=dt)
    x2 = torch.randn(1, 8, device=device, dtype=dt)
    tiny = {
        "conv2d": (nn.Conv2d(8, 8, 1, bias=False), x4),
        "batch_norm": (nn.BatchNorm2d(8), x4),
        "relu": (nn.ReLU(), x4),
        "add": (lambda t: t + t, x4),
        "linear": (nn.Linear(8, 8), x2),
        "adaptive_avg_pool2d": (nn.AdaptiveAvgPool2d(1), x4),
    }
    overhead_by_kind: dict[str, float] = {}
    for kind, (mod, x) in tiny.items():
        if isinstance(mod, nn.Module):
            mod = mod.to(device=device, dtype=dt).eval()
        overhead_by_kind[kind] = median_s(lambda mod=mod, x=x: mod(x))
    return {
        "peak_flops": peak,
        "bandwidth_bytes_per_s": bandwidth,
        "cache_bandwidth_bytes_per_s": cache_bandwidth,
        "overhead_s_per_op": statistics.median(overhead_by_kind.values()),
        "overhead_by_kind": overhead_by_kind,
    }
