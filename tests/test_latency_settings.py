"""Latency settings, keys, fingerprint and the timing loop's statistics (no worker processes)."""

from __future__ import annotations

import dataclasses
import statistics
import time

import pytest

from cost_engine.latency import LatencySettings, UnknownDevice, available_devices, fingerprint, latency_key
from cost_engine.latency.keys import CACHE_VERSION, PROTOCOL_VERSION
from cost_engine.latency.protocol import Protocol, median_ci, percentile, summarize_samples, time_call
from cost_engine.latency.settings import usable_cores
from cost_engine.spec import ConvSpec, NetworkSpec, PoolSpec, SpecError

NET = NetworkSpec(stem=(ConvSpec(out_channels=8, stride=2),), stages=((ConvSpec(out_channels=8),),),
                  head=(PoolSpec(mode="global_avg", flatten=True),), resolution=32)


def test_settings_defaults_are_resolved_explicitly():
    s = LatencySettings().resolved()
    assert s.threads == usable_cores()
    assert s.dtype == "float32"
    assert LatencySettings(device="cuda", cudnn_benchmark=True).device == "cuda"
    assert LatencySettings(dtype="bf16").resolved().dtype == "bfloat16"
    assert LatencySettings(dtype="fp16").resolved().dtype == "float16"
    # cudnn autotuning means nothing on a CPU: it must not split the cache
    assert LatencySettings(cudnn_benchmark=True).resolved().cudnn_benchmark is False


def test_bad_settings_name_every_field():
    with pytest.raises(SpecError) as err:
        LatencySettings(device="tpu", batch_size=0, dtype="int8", threads=0, memory_format="nhwc",
                        compile="yes").validate()
    fields = {e.path for e in err.value.errors}
    assert fields == {"device", "batch_size", "dtype", "threads", "memory_format", "compile"}
    with pytest.raises(SpecError) as err:
        LatencySettings.from_dict({"device": "cpu", "batchsize": 2})
    assert err.value.errors[0].path == "batchsize"


def test_unknown_device_is_its_own_error():
    assert "cpu" in available_devices()
    missing = f"cuda:{len(available_devices()) + 7}"
    with pytest.raises(UnknownDevice) as err:
        fingerprint(missing)
    assert err.value.device == missing and "cpu" in err.value.available


def test_fingerprint_names_the_hardware_and_software():
    fp = fingerprint("cpu", 2)
    assert fp["device"] == "cpu" and fp["threads"] == 2
    assert fp["cpu_model"] and fp["device_name"] == fp["cpu_model"]
    import torch

    assert fp["torch"] == torch.__version__
    assert "cuda" in fp and "cudnn" in fp


def test_key_separates_dtype_batch_threads_and_agrees_with_the_cache_convention():
    base = LatencySettings(threads=1)
    k = latency_key(NET, base)
    assert len(k) == 64
    variants = [dataclasses.replace(base, dtype="bfloat16"), dataclasses.replace(base, batch_size=2),
                dataclasses.replace(base, threads=2), dataclasses.replace(base, memory_format="channels_last"),
                dataclasses.replace(base, compile=True), dataclasses.replace(base, resolution=64)]
    keys = {latency_key(NET, v) for v in variants}
    assert k not in keys and len(keys) == len(variants)
    # aliases and explicit defaults are the same measurement
    assert latency_key(NET, dataclasses.replace(base, dtype="fp32")) == k
    assert latency_key(NET, dataclasses.replace(base, resolution=32)) == k
    # a different machine (fingerprint) is a different entry
    other = fingerprint("cpu", 1) | {"cpu_model": "Some Other CPU"}
    assert latency_key(NET, base, other) != k
    # same convention as the server cache: sha256(canonical JSON of spec, context, version)
    from cost_engine.keys import cache_key
    from cost_engine.latency.keys import cache_key as engine_cache_key

    ctx = {"what": "latency", "x": [1, 2.5, "a"]}
    assert engine_cache_key(NET.to_dict(), ctx, CACHE_VERSION) == cache_key(NET.to_dict(), ctx, CACHE_VERSION)
    assert PROTOCOL_VERSION in CACHE_VERSION


def test_key_rejects_bad_candidates_with_field_paths():
    bad = dataclasses.replace(NET, stages=((ConvSpec(out_channels=8, kernel_size=40),),))
    with pytest.raises(SpecError) as err:
        latency_key(bad, LatencySettings())
    assert any("kernel_size" in e.path for e in err.value.errors)


def test_order_statistics():
    xs = sorted(float(i) for i in range(1, 101))
    lo, hi = median_ci(xs)
    assert lo < statistics.median(xs) < hi
    assert hi - lo < 25  # ~ +-1 sigma*1.96 of 100 ranks
    assert percentile(xs, 0.1) == pytest.approx(10.9)
    s = summarize_samples([1.0, 1.0, 1.0, 1.0])
    assert s["cv"] == 0.0 and s["median_ms"] == 1.0 and s["runs"] == 4


def test_first_call_is_never_a_sample_and_warmup_is_time_based():
    calls = []

    def fn():
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.05)  # lazy initialization on the first call

    p = Protocol(warmup_s=0.05, min_warmup_calls=3, time_cap_s=0.05, min_runs=10, rel_ci=0.5)
    r = time_call(fn, p)
    assert r["first_call_ms"] >= 50
    assert max(r["samples_ms"]) < 5
    assert r["warmup_calls"] >= 3
    # the 0.05 s warm-up ran many more calls than the minimum: it is time-based
    assert r["warmup_calls"] > 10
    assert r["stopped"] in ("converged", "time_cap")
    assert len(calls) == 1 + r["warmup_calls"] + len(r["samples_ms"]) * r["number"]


def test_sampling_stops_at_the_time_cap_when_spread_stays_large():
    state = {"i": 0}

    def noisy():
        state["i"] += 1
        time.sleep(0.0002 if state["i"] % 2 else 0.002)

    p = Protocol(warmup_s=0.0, min_warmup_calls=1, time_cap_s=0.2, min_runs=10, rel_ci=0.0001)
    t0 = time.perf_counter()
    r = time_call(noisy, p)
    assert r["stopped"] == "time_cap"
    assert time.perf_counter() - t0 < 2.0


def test_fast_calls_are_batched_so_the_timer_never_dominates():
    p = Protocol(warmup_s=0.01, time_cap_s=0.05, min_sample_s=1e-3)
    r = time_call(lambda: None, p)
    assert r["number"] > 10


def test_gpu_only_settings_are_validated_and_do_not_split_the_cpu_cache():
    with pytest.raises(SpecError) as err:
        LatencySettings(l2="lukewarm", cuda_graphs="yes").validate()
    assert {e.path for e in err.value.errors} == {"l2", "cuda_graphs"}
    cpu = LatencySettings(threads=1, in_channels=8, resolution=16)
    # on the CPU cold L2 and CUDA graphs mean nothing: resolved to the defaults, one key
    assert LatencySettings(threads=1, l2="cold", cuda_graphs=True).resolved().l2 == "warm"
    assert latency_key(ConvSpec(out_channels=8), dataclasses.replace(cpu, l2="cold", cuda_graphs=True)) == \
        latency_key(ConvSpec(out_channels=8), cpu)
    gpu = LatencySettings(device="cuda:0", l2="cold", cuda_graphs=True).resolved()
    assert gpu.l2 == "cold" and gpu.cuda_graphs is True


class _FakeEvent:
    def __init__(self, log: list[str], clock: list[float]):
        self.log, self.clock, self.t = log, clock, 0.0

    def record(self) -> None:
        self.t = self.clock[0]
        self.log.append("record")

    def synchronize(self) -> None:
        self.log.append("sync")

    def elapsed_time(self, other: _FakeEvent) -> float:
        return (other.t - self.t) * 1e3


def test_cold_l2_flushes_outside_the_events_of_each_call():
    """The CUDA clock on a stand-in for torch.cuda: with a flush, every call has its own pair of
    events and the flush runs before the first of them, so no sample includes it."""
    from cost_engine.latency.protocol import _CudaClock

    log: list[str] = []
    now = [0.0]

    class FakeCuda:
        @staticmethod
        def Event(enable_timing: bool = False) -> _FakeEvent:
            return _FakeEvent(log, now)

        @staticmethod
        def synchronize(device: object = None) -> None:
            log.append("sync")

    def flush() -> None:
        log.append("flush")
        now[0] += 1.0  # a flush that takes a whole second: it must not be timed

    def call() -> None:
        log.append("call")
        now[0] += 0.001

    clock = _CudaClock.__new__(_CudaClock)
    clock.torch, clock.device, clock.flush = type("T", (), {"cuda": FakeCuda})(), None, flush
    seconds = clock.time(call, 3)
    assert seconds == pytest.approx(0.003)
    assert log[:5] == ["sync", "flush", "record", "call", "record"]
    assert log.count("flush") == 3 and log.count("call") == 3
    clock.flush = None
    log.clear()
    assert clock.time(call, 3) == pytest.approx(0.003) and "flush" not in log


def test_gpu_free_memory_is_read_without_a_cuda_context(tmp_path, monkeypatch):
    """Admission asks nvidia-smi, never torch (a context in the server would take GPU memory)."""
    from cost_engine.latency.admission import available_bytes

    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\necho 81234\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    monkeypatch.delenv("COST_ORACLE_MEASURE_MEMORY_BYTES", raising=False)
    assert available_bytes("cuda:1") == 81234 << 20
    assert "--id=1" in (tmp_path / "args").read_text() and "memory.free" in (tmp_path / "args").read_text()
    tool.write_text("#!/bin/sh\nexit 9\n")
    assert available_bytes("cuda:0") is None
