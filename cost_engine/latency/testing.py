"""A simulated measurement worker for fast, deterministic tests of everything *around* timing.

Real timing takes seconds per session and is noisy on a shared host; the queue, the cache paths,
the budget filter, the server and the client only need *a* latency that behaves like one. Inside
``with FakeWorker() as fake:`` every worker session is answered in-process: each op costs
``overhead_s`` plus max(FLOPs / ``peak_flops``, bytes / ``bandwidth``) (from the engine's formulas),
times ``scale``, and calibration jobs return those ceilings. The sessions run the *real* timing
loops (``protocol.time_paired``) on a :class:`SimClock`, so the pairing arithmetic is what is
tested, on a device whose speed may drift by a known factor during a session (``slowdown``).
``fake.sessions`` and ``fake.items`` count what would have been timed. The protocol itself is
tested against real worker processes (tests/test_latency_measure.py).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

from cost_engine.expand.network import network_blocks
from cost_engine.formulas import op_cost
from cost_engine.latency.protocol import Protocol, time_call, time_paired
from cost_engine.report import DTYPE_BYTES
from cost_engine.spec import from_dict


class SimClock:
    """A clock for the real timing loop on a simulated device: a call of ``fn`` (which returns
    its true duration in seconds) takes that duration times the device's slowdown at this
    virtual moment, times a small seeded jitter. ``now()`` is the virtual time."""

    def __init__(self, slowdown: Callable[[float], float] | None = None, seed: int = 0, jitter: float = 0.01):
        self.t = 0.0
        self.last_cpu = 0.0
        self.slowdown = slowdown or (lambda t: 1.0)
        self.jitter = jitter
        self._rng = random.Random(seed)

    def now(self) -> float:
        return self.t

    @staticmethod
    def faults() -> int:
        return 0

    def time(self, fn: Callable[[], float], number: int) -> float:
        true = fn() * number
        # the slowdown at the call's midpoint: a drift that is linear over the call is integrated exactly
        mid = self.t + true * self.slowdown(self.t) / 2
        took = true * self.slowdown(mid) * (1.0 + self._rng.uniform(-self.jitter, self.jitter))
        self.t += took
        self.last_cpu = true
        return took


#: the simulated loop's protocol: the job's, with a warm-up of two calls (a simulated device is
#: warm at once, and virtual warm-up seconds of a microsecond op would be a million calls)
def _sim_protocol(protocol: Protocol) -> Protocol:
    return dataclasses.replace(protocol, warmup_s=0.0, max_warmup_s=0.0, min_warmup_calls=2)


class FakeWorker:
    """``slowdown(session, t)``: how much slower than its true speed the simulated device runs
    in session ``session`` (1, 2, ...) at ``t`` virtual seconds into it (default: constant per
    session, 1.000 / 1.005 / 1.010 in turn); ``jitter``: each call's uniform relative noise."""

    def __init__(self, *, peak_flops: float = 50e9, bandwidth: float = 10e9, overhead_s: float = 3e-6,
                 scale: float = 1.0, delay_s: float = 0.0, fail: bool = False,
                 slowdown: Callable[[int, float], float] | None = None, jitter: float = 0.01):
        self.peak_flops = peak_flops
        self.jitter = jitter
        self.bandwidth = bandwidth
        self.overhead_s = overhead_s
        self.scale = scale
        self.delay_s = delay_s
        self.fail = fail
        self.slowdown = slowdown or (lambda session, t: 1.0 + 0.005 * (session % 3))
        self.sessions = 0
        self.items = 0
        self.jobs: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._patches: list[Any] = []

    def latency_ms(self, spec_dict: dict[str, Any], input_shape: list[int], dtype: str = "float32") -> float:
        """The simulated device's true latency of a spec (quiet, no jitter)."""
        spec = from_dict(spec_dict)
        return self._ops_ms([op for block in network_blocks(spec, tuple(input_shape)) for op in block.ops], dtype)

    def unit_ms(self, payload: dict[str, Any], dtype: str = "float32") -> float:
        """The simulated device's true latency of a kernel unit (its ops' payload)."""
        from cost_engine.ops import Op, make_attrs

        ops = [Op(o["kind"], tuple(tuple(s) for s in o["inputs"]), tuple(tuple(s) for s in o["outputs"]),
                  tuple(tuple(s) for s in o["weights"]),
                  tuple(tuple(s) for s in o.get("buffers", ())), make_attrs(**o["attrs"])) for o in payload["ops"]]
        return self._ops_ms(ops, dtype)

    def _ops_ms(self, ops: list[Any], dtype: str) -> float:
        itemsize = DTYPE_BYTES[dtype]
        total = 0.0
        for op in ops:
            c = op_cost(op)
            total += self.overhead_s + max(c.flops / self.peak_flops, (c.read + c.written) * itemsize / self.bandwidth)
        return total * self.scale * 1e3

    def _timing(self, item: dict[str, Any], protocol: Protocol, dtype: str, threads: int,
                session: int) -> dict[str, Any]:
        clock = SimClock(lambda t: self.slowdown(session, t), seed=session * 7919 + len(str(item.get("id"))),
                         jitter=self.jitter)
        true_s = (self.unit_ms(item["unit"], dtype) if "unit" in item
                  else self.latency_ms(item["spec"], item["input_shape"], dtype)) / 1e3
        own = Protocol.from_dict(item["protocol"]) if item.get("protocol") else protocol
        ref = item.get("reference")
        if ref is None:
            timing = time_call(lambda: true_s, _sim_protocol(own), clock=clock)
        else:
            ref_s = self.latency_ms(ref["spec"], ref["input_shape"], dtype) / 1e3
            timing = time_paired(lambda: true_s, lambda: ref_s, _sim_protocol(own), clock=clock)
            timing["reference"] = ref.get("name")
        timing["id"] = item.get("id")
        timing["threads"] = threads
        return timing

    def run_session(self, job: dict[str, Any], *, allocator_fix: bool = True,
                    timeout_s: float | None = None) -> dict[str, Any]:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            from cost_engine.latency.worker import MeasurementError

            raise MeasurementError("simulated worker failure")
        settings = job["settings"]
        threads = int(settings["threads"])
        protocol = Protocol.from_dict(job["protocol"])
        with self._lock:
            self.sessions += 1
            self.items += len(job.get("items", []))
            self.jobs.append(job)
            session = self.sessions
        out: dict[str, Any] = {"pid": 100000 + session, "threads": threads, "env": {}, "wall_s": self.delay_s,
                               "items": [self._timing(it, protocol, settings["dtype"], threads, session)
                                         for it in job.get("items", [])]}
        if job.get("canary"):
            from cost_engine.latency.canary import canary_item

            out["canary_before"] = self._timing(canary_item(), protocol, settings["dtype"], threads, session)
            out["canary_after"] = self._timing(canary_item(), protocol, settings["dtype"], threads, session)
        if job.get("calibrate"):
            out["calibration"] = {"peak_flops": self.peak_flops / self.scale,
                                  "bandwidth_bytes_per_s": self.bandwidth / self.scale,
                                  "cache_bandwidth_bytes_per_s": 4 * self.bandwidth / self.scale,
                                  "overhead_s_per_op": self.overhead_s * self.scale,
                                  "overhead_by_kind": {}}
        return out

    def __enter__(self) -> FakeWorker:
        for target in ("cost_engine.latency.measure.run_session", "cost_engine.latency.worker.run_session"):
            p = mock.patch(target, self.run_session)
            p.start()
            self._patches.append(p)
        return self

    def __exit__(self, *exc: object) -> None:
        for p in reversed(self._patches):
            p.stop()
        self._patches.clear()
