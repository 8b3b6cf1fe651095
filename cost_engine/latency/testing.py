"""A simulated measurement worker for fast, deterministic tests of everything *around* timing.

Real timing takes seconds per session and is noisy on a shared host; the queue, the cache paths,
the budget filter, the server and the client only need *a* latency that behaves like one. Inside
``with FakeWorker() as fake:`` every worker session is answered in-process: each op costs
``overhead_s`` plus max(FLOPs / ``peak_flops``, bytes / ``bandwidth``) (from the engine's formulas),
times ``scale``, with a small deterministic jitter, and calibration jobs return those ceilings.
``fake.sessions`` and ``fake.items`` count what would have been timed. The protocol itself is
tested against real worker processes (tests/test_latency_measure.py).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from unittest import mock

from cost_engine.expand.network import network_blocks
from cost_engine.formulas import op_cost
from cost_engine.report import DTYPE_BYTES
from cost_engine.spec import from_dict


class FakeWorker:
    def __init__(self, *, peak_flops: float = 50e9, bandwidth: float = 10e9, overhead_s: float = 3e-6,
                 scale: float = 1.0, delay_s: float = 0.0, fail: bool = False):
        self.peak_flops = peak_flops
        self.bandwidth = bandwidth
        self.overhead_s = overhead_s
        self.scale = scale
        self.delay_s = delay_s
        self.fail = fail
        self.sessions = 0
        self.items = 0
        self.jobs: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._patches: list[Any] = []

    def latency_ms(self, spec_dict: dict[str, Any], input_shape: list[int], dtype: str = "float32") -> float:
        spec = from_dict(spec_dict)
        itemsize = DTYPE_BYTES[dtype]
        total = 0.0
        for block in network_blocks(spec, tuple(input_shape)):
            for op in block.ops:
                c = op_cost(op)
                total += self.overhead_s + max(c.flops / self.peak_flops,
                                               (c.read + c.written) * itemsize / self.bandwidth)
        return total * self.scale * 1e3

    def _timing(self, item: dict[str, Any], dtype: str, threads: int, session: int) -> dict[str, Any]:
        base = self.latency_ms(item["spec"], item["input_shape"], dtype)
        jitter = [1.0, 0.99, 1.01, 0.995, 1.005, 1.0, 0.98, 1.02, 1.0, 1.0]
        drift = 1.0 + 0.005 * (session % 3)
        return {"id": item.get("id"), "samples_ms": [base * j * drift for j in jitter], "number": 1,
                "first_call_ms": base * 3.7, "warmup_calls": 5, "warmup_page_faults": 0,
                "warmup_steady": True, "page_faults_per_call": 0.0, "sampling_s": 0.0, "stopped": "converged",
                "threads": threads}

    def run_session(self, job: dict[str, Any], *, allocator_fix: bool = True,
                    timeout_s: float | None = None) -> dict[str, Any]:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            from cost_engine.latency.worker import MeasurementError

            raise MeasurementError("simulated worker failure")
        settings = job["settings"]
        threads = int(settings["threads"])
        with self._lock:
            self.sessions += 1
            self.items += len(job.get("items", []))
            self.jobs.append(job)
            session = self.sessions
        out: dict[str, Any] = {"pid": 100000 + session, "threads": threads, "env": {}, "wall_s": self.delay_s,
                               "items": [self._timing(it, settings["dtype"], threads, session)
                                         for it in job.get("items", [])]}
        if job.get("canary"):
            from cost_engine.latency.canary import canary_item

            out["canary_before"] = self._timing(canary_item(), settings["dtype"], threads, session)
            out["canary_after"] = self._timing(canary_item(), settings["dtype"], threads, session)
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
