"""Device ceilings for the roofline: peak FLOP/s, memory bandwidth and per-op overhead.

Measured once per (fingerprint, dtype, threads) in a fresh worker process with the same
environment as every measurement, and cached with the fingerprint. Peak FLOP/s is the best of a
few large square matmuls in the measured dtype (the most efficient kernel the library has, so an
upper bound on what a conv achieves). Bandwidth is a large copy (read + write, far beyond the
last-level cache), and ``cache_bandwidth`` a copy small enough to stay in cache. The per-op
overhead is the median time of tiny ops (dispatch, primitive lookup, kernel launch): at batch 1 a
mobile network is hundreds of ops of a few microseconds of work each, and a roofline without
this floor underestimates it several times over.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from cost_engine.latency.fingerprint import check_device, fingerprint
from cost_engine.latency.keys import CACHE_VERSION, KIND_CALIBRATION, PROTOCOL_VERSION, entry_key
from cost_engine.latency.protocol import Protocol
from cost_engine.latency.settings import LatencySettings

CALIBRATION_PROTOCOL = Protocol(warmup_s=0.2, min_warmup_calls=2, max_warmup_s=1.0, time_cap_s=0.5, min_runs=5,
                                rel_ci=0.02)


@dataclass
class Calibration:
    device: str
    dtype: str
    threads: int
    peak_flops: float
    bandwidth_bytes_per_s: float
    cache_bandwidth_bytes_per_s: float
    overhead_s_per_op: float
    overhead_by_kind: dict[str, float] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    protocol_version: str = PROTOCOL_VERSION
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], cached: bool = False) -> Calibration:
        data = dict(data)
        data["cached"] = cached
        return cls(**data)

    def overhead(self, kind: str) -> float:
        return self.overhead_by_kind.get(kind, self.overhead_s_per_op)


def calibration_key(device: str, dtype: str, threads: int, fp: dict[str, Any]) -> str:
    return entry_key(KIND_CALIBRATION, {"device": device}, {"dtype": dtype, "threads": threads, "fingerprint": fp})


class MissingCalibration(LookupError):
    """No calibration is cached and measuring one was not allowed."""


def calibrate(device: str = "cpu", dtype: str = "float32", threads: int | None = None, *, cache: Any = None,
              refresh: bool = False, measure: bool = True) -> Calibration:
    """The device's ceilings (cached with its fingerprint; measured on the first call, unless
    ``measure`` is False: then :class:`MissingCalibration`)."""
    from cost_engine.latency.worker import run_session

    settings = LatencySettings(device=device, dtype=dtype, threads=threads).resolved()
    check_device(settings.device)
    fp = fingerprint(settings.device, settings.threads)
    key = calibration_key(settings.device, settings.dtype, int(settings.threads or 1), fp)
    if cache is not None and not refresh:
        hit = cache.get(key)
        if hit is not None:
            return Calibration.from_dict(hit, cached=True)
    if not measure:
        raise MissingCalibration(f"no calibration of {settings.device} / {settings.dtype} / {settings.threads} threads")
    job = {"settings": dataclasses.asdict(settings), "protocol": CALIBRATION_PROTOCOL.to_dict(), "items": [],
           "canary": False, "calibrate": True}
    raw = run_session(job)["calibration"]
    cal = Calibration(device=settings.device, dtype=settings.dtype, threads=int(settings.threads or 1),
                      fingerprint=fp, **raw)
    if cache is not None:
        cache.put(key, KIND_CALIBRATION, cal.to_dict() | {"cached": False}, CACHE_VERSION)
    return cal
