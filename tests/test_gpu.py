"""The CUDA path (issue 17), on a real GPU: every test here is marked ``gpu`` and skipped cleanly
without one (``tests/conftest.py``). ``benchmarks/gpu_check.sh`` runs them on a lent GPU host.

What a GPU user means by latency: CUDA events around the calls, cuDNN autotuning per shape
before any sample, fp32/fp16/bf16, channels-last, large batches, eager and ``torch.compile``
(compile time apart), CUDA graphs, warm and cold L2 (named in the key), the GPU's clocks and
throttling reported beside the figure, and ceilings per dtype for the roofline.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
import pytest

from cost_engine.latency import LatencySettings, MemoryCache, calibrate, latency_key, measure
from cost_engine.spec import ConvSpec, MBConvSpec

pytestmark = pytest.mark.gpu

BLOCK = MBConvSpec(out_channels=64, kernel_size=3)
GPU = LatencySettings(device="cuda:0", in_channels=64, resolution=56, batch_size=8, cudnn_benchmark=True)


@pytest.fixture(scope="module")
def cache() -> MemoryCache:
    return MemoryCache()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
def test_every_dtype_and_memory_format_is_measured_with_events(cache, dtype: str, memory_format: str) -> None:
    s = dataclasses.replace(GPU, dtype=dtype, memory_format=memory_format)
    r = measure(BLOCK, s, cache=cache, sessions=2, time_cap_s=0.5)
    assert r.source == "measured" and r.method == "paired" and r.median_ms > 0
    assert r.p10_ms <= r.median_ms <= r.p90_ms
    assert r.fingerprint["gpu_name"] and r.fingerprint["gpu_driver"] and r.fingerprint["cudnn"]
    assert r.settings["dtype"] == dtype and r.settings["memory_format"] == memory_format
    # clocks read around every session's sampling, and whether the GPU throttled then
    sessions = r.details["paired_sessions"]
    assert all(x["gpu_clocks"]["before"].get("clocks.sm") for x in sessions)
    assert r.details["throttled_sessions"] >= 0


def test_half_precision_is_faster_than_fp32_on_a_dense_conv(cache) -> None:
    dense = ConvSpec(out_channels=256, kernel_size=3)
    s = dataclasses.replace(GPU, in_channels=256, batch_size=64, memory_format="channels_last")
    fp32 = measure(dense, s, cache=cache, sessions=2, time_cap_s=0.5)
    fp16 = measure(dense, dataclasses.replace(s, dtype="float16"), cache=cache, sessions=2, time_cap_s=0.5)
    assert fp16.median_ms < fp32.median_ms  # tensor cores


def test_cold_l2_is_its_own_key_and_never_faster_than_warm(cache) -> None:
    small = ConvSpec(out_channels=64, kernel_size=1)  # memory-bound: its operands fit in L2 when warm
    s = dataclasses.replace(GPU, batch_size=1)
    warm = measure(small, s, cache=cache, sessions=2, time_cap_s=0.5)
    cold = measure(small, dataclasses.replace(s, l2="cold"), cache=cache, sessions=2, time_cap_s=0.5)
    assert warm.key != cold.key and cold.settings["l2"] == "cold"
    assert cold.median_ms >= 0.9 * warm.median_ms


def test_cuda_graphs_and_compile_are_their_own_keys_with_compile_time_apart(cache) -> None:
    graphs = measure(BLOCK, dataclasses.replace(GPU, cuda_graphs=True), cache=cache, sessions=2, time_cap_s=0.5)
    assert graphs.median_ms > 0 and graphs.key != latency_key(BLOCK, GPU)
    compiled = measure(BLOCK, dataclasses.replace(GPU, compile=True), cache=cache, sessions=1, time_cap_s=0.5)
    # the first call compiles; it is reported, never a sample
    assert compiled.first_call_ms > 10 * compiled.median_ms


@pytest.mark.parametrize("batch", [1, 256])
def test_batch_sizes_from_1_to_256(cache, batch: int) -> None:
    r = measure("resnet18", LatencySettings(device="cuda:0", batch_size=batch, dtype="float16",
                                            memory_format="channels_last", cudnn_benchmark=True),
                cache=cache, sessions=1, time_cap_s=0.5)
    assert r.median_ms > 0 and r.details["input_shape"][0] == batch


def test_calibration_has_tensor_core_peaks_for_half_precision() -> None:
    fp32 = calibrate("cuda:0", "float32", refresh=True)
    fp16 = calibrate("cuda:0", "float16", refresh=True)
    bf16 = calibrate("cuda:0", "bfloat16", refresh=True)
    assert fp16.peak_flops > 2 * fp32.peak_flops and bf16.peak_flops > 2 * fp32.peak_flops
    assert fp32.bandwidth_bytes_per_s > 5e11  # HBM: hundreds of GB/s at the least


def test_measure_on_the_gpu_through_grpc(tmp_path: Path) -> None:
    from cost_oracle.contract import convert
    from cost_oracle.contract.types import BlockCandidate
    from cost_oracle.server.app import start
    from cost_oracle.server.config import ServerConfig
    from costoracle.v1 import oracle_pb2 as pb
    from costoracle.v1 import oracle_pb2_grpc

    srv = start(ServerConfig(db_url=f"sqlite:///{tmp_path / 'c.sqlite'}", port=0))
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
    try:
        stub = oracle_pb2_grpc.CostOracleStub(channel)
        info = stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=30)
        assert any(d.name.startswith("cuda") for d in info.devices)
        ctx = pb.Context(resolution=56, device="cuda:0", latency=pb.LATENCY_MODE_MEASURE, dtype=pb.DTYPE_FLOAT16,
                         cudnn_benchmark=True)
        r = stub.GetCost(pb.GetCostRequest(candidate=convert.candidate_to_proto(BlockCandidate(BLOCK, 64)),
                                           context=ctx), timeout=300)
        assert r.report.latency.median_ms > 0 and r.report.latency.method == "paired"
    finally:
        channel.close()
        srv.stop(0)
