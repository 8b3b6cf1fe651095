"""The report's public form: keys, JSON-ability, breakdowns that add up, memo-free equality."""

from __future__ import annotations

import json

import pytest

import cost_engine
from cost_engine.analyze import block_summary
from cost_engine.expand import expand
from cost_engine.summary import summarize

KEYS = {"params", "buffers", "macs", "flops", "memory_access_bytes", "memory_access_bytes_fused",
        "peak_activation_bytes", "activations", "arithmetic_intensity", "by_op_type", "by_module", "views",
        "unknown_ops", "cost_model_version"}


@pytest.mark.parametrize("name", ["efficientnet_b0", "fasternet_t0", "resnet50", "shufflenet_v2_x1_0",
                                  "convnext_tiny", "vit_tiny_patch16_224"])
def test_breakdowns_add_up_to_totals(name: str) -> None:
    d = cost_engine.analyze(name, batch_size=2).to_dict()
    assert d.keys() >= KEYS
    json.dumps(d)
    for part in ("by_op_type", "by_module"):
        for field in ("macs", "flops", "params", "memory_access_bytes"):
            assert sum(v[field] for v in d[part].values()) == d[field], (part, field)
    assert d["arithmetic_intensity"] == pytest.approx(d["flops"] / d["memory_access_bytes"])
    assert d["memory_access_bytes_fused"] < d["memory_access_bytes"]
    assert not d["unknown_ops"]


@pytest.mark.parametrize("name", ["efficientnet_b0", "regnet_y_400mf", "mobilenet_v2"])
def test_memoized_blocks_equal_one_pass_over_the_whole_network(name: str) -> None:
    """Per-block memo + merge must give what summarizing the full op list gives."""
    spec = cost_engine.resolve(name)
    shape = (2, spec.in_channels, spec.resolution, spec.resolution)
    block_summary.cache_clear()
    report = cost_engine.analyze(spec, batch_size=2)
    whole = summarize(expand(spec, shape))
    assert report.summary.totals == whole.totals
    assert report.summary.peak_elements == whole.peak_elements
    assert report.summary.fused_access == whole.fused_access
    assert report.summary.activations == whole.activations
    assert report.summary.views == whole.views
    assert report.by_module() == {m: c.to_dict(4) for m, c in whole.by_module.items()}


def test_dtype_scales_bytes_not_counts() -> None:
    fp32 = cost_engine.analyze("mobilenet_v2").to_dict()
    fp16 = cost_engine.analyze("mobilenet_v2", dtype="float16").to_dict()
    assert fp16["macs"] == fp32["macs"] and fp16["params"] == fp32["params"]
    assert 2 * fp16["memory_access_bytes"] == fp32["memory_access_bytes"]
    assert 2 * fp16["peak_activation_bytes"] == fp32["peak_activation_bytes"]


def test_bad_context_names_fields() -> None:
    with pytest.raises(cost_engine.SpecError) as info:
        cost_engine.analyze("mobilenet_v2", batch_size=0, resolution=10**6, dtype="int3")
    assert {e.path for e in info.value.errors} == {"batch_size", "resolution", "dtype"}
    with pytest.raises(cost_engine.SpecError, match="unknown built-in model"):
        cost_engine.analyze("efficientnet_b99")
