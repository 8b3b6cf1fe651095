"""Kernel units and the device-kind fusion rules (cost_engine/latency/kernels.py, issue #11)."""

from __future__ import annotations

import pytest

from cost_engine import analyze
from cost_engine.expand.registry import expand_block
from cost_engine.families import resolve
from cost_engine.formulas import VIEWS
from cost_engine.latency.kernels import FEATURES, RULES, kernels_of_ops, network_kernels, rules_for
from cost_engine.spec import (
    FasterNetBlockSpec,
    MBConvSpec,
    RegNetBlockSpec,
    ResNetBasicSpec,
    ResNetBottleneckSpec,
    ShuffleV2UnitSpec,
)

BLOCKS = [
    (MBConvSpec(out_channels=24, expand_ratio=4.0, kernel_size=5, se_ratio=0.25, act="hardswish"), (1, 24, 28, 28)),
    (MBConvSpec(out_channels=32, expand_ratio=6.0, kernel_size=3, stride=2, se_ratio=0.0), (2, 24, 28, 28)),
    (FasterNetBlockSpec(mlp_ratio=2.0), (1, 40, 28, 28)),
    (ResNetBasicSpec(out_channels=64, stride=2), (1, 32, 28, 28)),
    (ResNetBottleneckSpec(width=32, stride=1), (1, 128, 14, 14)),
    (RegNetBlockSpec(out_channels=48, group_width=8, se_ratio=0.25), (1, 32, 14, 14)),
    (ShuffleV2UnitSpec(out_channels=48, stride=1), (1, 48, 14, 14)),
]
#: ATen calls that are views: they launch nothing (the rules' ``no_kernel``)
ATEN_VIEWS = {"aten::split_with_sizes", "aten::split", "aten::view", "aten::reshape", "aten::flatten",
              "aten::transpose", "aten::permute", "aten::chunk", "aten::narrow", "aten::slice"}


@pytest.mark.parametrize("spec,shape", BLOCKS, ids=lambda v: getattr(v, "kind", None) or str(v))
def test_eager_cpu_launches_match_the_profiler(spec, shape):
    """The eager CPU rule set (every op but a view is its own kernel) against what PyTorch runs:
    the top-level ATen calls torch.profiler records for one forward of the built block."""
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile

    from cost_engine.modules import build

    module = build(spec, input_shape=shape).eval()
    x = torch.randn(shape)
    with torch.inference_mode():
        module(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            module(x)
    launched = [e.name for e in prof.events() if e.cpu_parent is None and e.name.startswith("aten::")
                and e.name not in ATEN_VIEWS]
    kernels = kernels_of_ops(list(expand_block(spec, shape, False)[0]), rules=rules_for("cpu"))
    assert sum(k.features["launches"] for k in kernels) == len(launched), launched


@pytest.mark.parametrize("spec,shape", BLOCKS, ids=lambda v: getattr(v, "kind", None) or str(v))
def test_every_op_is_in_exactly_one_unit(spec, shape):
    ops = list(expand_block(spec, shape, False)[0])
    kernels = kernels_of_ops(ops)
    grouped = [op for k in kernels for op in k.ops]
    assert grouped == [op for op in ops if op.kind not in VIEWS]
    for k in kernels:
        assert len(k.vector()) == len(FEATURES)


def test_unit_types_and_squeeze_excite():
    se_block, shape = BLOCKS[0]
    types = [k.type for k in kernels_of_ops(list(expand_block(se_block, shape, False)[0]))]
    assert types == ["pwconv", "dwconv", "se", "pwconv"]
    se = kernels_of_ops(list(expand_block(se_block, shape, False)[0]))[2]
    assert [op.kind for op in se.ops] == ["adaptive_avg_pool2d", "conv2d", "hardswish", "conv2d", "sigmoid", "mul"]
    # the residual add joins the conv whose output it reads; a ResNet's add + relu too
    last = kernels_of_ops(list(expand_block(se_block, shape, False)[0]))[-1]
    assert [op.kind for op in last.ops] == ["conv2d", "batch_norm", "add"] and last.features["has_add"] == 1
    basic, bshape = BLOCKS[3]
    tail = kernels_of_ops(list(expand_block(basic, bshape, False)[0]))[-1]
    assert [op.kind for op in tail.ops][-2:] == ["add", "relu"]
    # FasterNet: split is a view, the partial conv and the concat are units of their own
    fn, fshape = BLOCKS[2]
    assert [k.type for k in kernels_of_ops(list(expand_block(fn, fshape, False)[0]))] == [
        "conv", "concat", "pwconv", "pwconv"]


@pytest.mark.parametrize("name", ["efficientnet_b0", "fasternet_t0", "resnet50", "regnet_y_400mf",
                                  "shufflenet_v2_x1_0"])
def test_unit_features_sum_to_the_report(name):
    """The features are the engine's own counts: summed over a network's units they are its report."""
    spec = resolve(name)
    kernels = network_kernels(spec, (1, 3, 224, 224))
    report = analyze(spec, batch_size=1, resolution=224)
    assert sum(k.features["macs"] for k in kernels) == report.macs
    assert sum(k.features["flops"] for k in kernels) == report.flops
    assert sum(k.features["bytes_read"] + k.features["bytes_written"] for k in kernels) == report.memory_access_bytes


def test_compiled_rules_fuse_the_pointwise_chain():
    spec, shape = BLOCKS[3]
    ops = list(expand_block(spec, shape, False)[0])
    eager = kernels_of_ops(ops, rules=rules_for("cuda:0"))
    compiled = kernels_of_ops(ops, rules=rules_for("cuda:0", compiled=True))
    # conv-bn-relu, conv-bn, then the shortcut's conv-bn with the add and relu that read it
    assert [[op.kind for op in k.ops] for k in eager][-1] == ["conv2d", "batch_norm", "add", "relu"]
    assert [k.features["launches"] for k in eager] == [3, 2, 4]
    assert [k.features["launches"] for k in compiled] == [2, 2, 2]
    assert set(RULES) == {("cpu", "eager"), ("cpu", "compiled"), ("cuda", "eager"), ("cuda", "compiled")}
    with pytest.raises(ValueError, match="no fusion rules for device kind 'mps'"):
        rules_for("mps")


def test_identity_ignores_module_paths_and_dedupes_a_space():
    kernels = network_kernels(resolve("efficientnet_b0"), (1, 3, 224, 224))
    distinct = {k.identity() for k in kernels}
    assert len(distinct) < len(kernels)  # repeated blocks share their units
    assert all(isinstance(hash(i), int) for i in distinct)


@pytest.mark.parametrize("spec,shape", BLOCKS, ids=lambda v: getattr(v, "kind", None) or str(v))
def test_units_rebuilt_from_data_run_what_they_record(spec, shape):
    """A unit sent as JSON data is rebuilt into the same ATen calls: its output has the recorded
    shape and the profiler counts the launches the rules predict."""
    torch = pytest.importorskip("torch")
    import json

    from torch.profiler import ProfilerActivity, profile

    from cost_engine.latency.kernel_build import build_unit, unit_payload

    for kernel in kernels_of_ops(list(expand_block(spec, shape, False)[0])):
        payload = json.loads(json.dumps(unit_payload(kernel)))
        call = build_unit(payload, torch)
        with torch.inference_mode():
            y = call()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                call()
        assert tuple(y.shape) == kernel.ops[-1].outputs[0], kernel.type
        launched = [e.name for e in prof.events() if e.cpu_parent is None and e.name.startswith("aten::")
                    and e.name not in ATEN_VIEWS]
        assert len(launched) == kernel.features["launches"], (kernel.type, launched)


def test_a_payload_with_an_unknown_kind_is_refused_by_name():
    torch = pytest.importorskip("torch")
    from cost_engine.latency.kernel_build import UnbuildableUnit, build_unit

    with pytest.raises(UnbuildableUnit, match=r"op kind 'os\.system' cannot be built"):
        build_unit({"ops": [{"kind": "os.system", "inputs": [], "outputs": [], "weights": [], "attrs": {},
                             "input_ids": [], "output_ids": []}]}, torch)
    with pytest.raises(UnbuildableUnit, match="non-empty 'ops'"):
        build_unit({"ops": []}, torch)


def test_units_are_measured_once_each_through_the_cache():
    """On the simulated device: a network's distinct units are timed once, paired, and stored;
    asking again times nothing; the measured ratio recovers the device's true unit latency."""
    from cost_engine.latency import LatencySettings, MemoryCache
    from cost_engine.latency.kernel_build import unit_payload
    from cost_engine.latency.kernel_table import measure_units
    from cost_engine.latency.testing import FakeWorker

    kernels = network_kernels(resolve("efficientnet_b0"), (1, 3, 224, 224))
    distinct = len({k.identity() for k in kernels})
    cache = MemoryCache()
    settings = LatencySettings(threads=1)
    with FakeWorker(jitter=0.0) as fake:
        first = measure_units(kernels, settings, cache=cache, sessions=2)
        assert fake.sessions == 2 and fake.items == 2 * distinct
        again = measure_units(kernels, settings, cache=cache)
        assert fake.sessions == 2
        assert [r.median_ms for r in again] == pytest.approx([r.median_ms for r in first])
        for kernel, result in zip(kernels[:10], first[:10], strict=True):
            true = fake.unit_ms(unit_payload(kernel))
            # ms come from the ratio and the anchor (the reference's quiet time): within 2% here
            assert result.median_ms == pytest.approx(true, rel=0.02), kernel.type
    seen = {k.identity() for k in kernels}
    other = network_kernels(resolve("mobilenet_v2"), (1, 3, 224, 224))
    shared = [k for k in other if k.identity() in seen]
    unseen = [k for k in other if k.identity() not in seen]
    assert shared and unseen  # the two networks share some units (same shapes): those are served
    got = measure_units(shared[:1] + unseen[:2], settings, cache=cache, measure_missing=False)
    assert got[0] is not None and got[0].cached and got[1:] == [None, None]


def test_a_unit_is_timed_by_a_real_worker():
    """One real worker session times a depthwise unit paired with its reference rung."""
    pytest.importorskip("torch")
    from cost_engine.latency import LatencySettings, MemoryCache
    from cost_engine.latency.kernel_table import measure_units
    from cost_engine.latency.protocol import Protocol

    spec, shape = BLOCKS[0]
    kernel = kernels_of_ops(list(expand_block(spec, shape, False)[0]))[1]
    assert kernel.type == "dwconv"
    quick = Protocol(warmup_s=0.05, min_warmup_calls=2, max_warmup_s=0.2, time_cap_s=0.1, min_runs=5, rel_ci=0.05)
    [result] = measure_units([kernel], LatencySettings(threads=1), cache=MemoryCache(), sessions=1, protocol=quick)
    assert result.source == "measured" and result.method == "paired"
    assert 0 < result.median_ms < 50 and result.reference["name"].startswith("mobilenetv2-x")  # dwconv
