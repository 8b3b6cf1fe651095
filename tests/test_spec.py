"""The spec layer: validation names every bad field, JSON round trips, no torch/grpc imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cost_engine.spec import (
    ConvSpec,
    LinearSpec,
    MBConvSpec,
    NetworkSpec,
    PoolSpec,
    SpecError,
    from_dict,
    to_dict,
    validate,
)


def test_every_bad_field_is_named_at_once() -> None:
    data = {
        "kind": "network",
        "resolution": "big",
        "stages": [[
            {"kind": "mbconv", "out_channels": -1, "kernel_size": 4},
            {"kind": "bogus"},
            {"kind": "conv", "out_channels": 10, "groups": 3},
            {"kind": "conv", "out_channels": 10, "colour": "red"},
        ]],
    }
    with pytest.raises(SpecError) as info:
        from_dict(data)
    paths = {e.path: e.reason for e in info.value.errors}
    assert paths["stages[0][0].out_channels"].startswith("must be >= 1")
    assert paths["stages[0][0].kernel_size"] == "must be odd and >= 1, got 4"
    assert "unknown spec kind 'bogus'" in paths["stages[0][1].kind"]
    assert "must divide out_channels" in paths["stages[0][2].groups"]
    assert paths["stages[0][3].colour"] == "unknown field"
    assert "must be an integer" in paths["resolution"]


@pytest.mark.parametrize("bad", [10**9, 16385])
def test_sizes_are_bounded(bad: int) -> None:
    errors = validate(NetworkSpec(stages=((ConvSpec(out_channels=bad),),)))
    assert [e.path for e in errors] == ["stages[0][0].out_channels"]
    assert "must be <=" in errors[0].reason


def test_wrong_types_and_missing_fields() -> None:
    with pytest.raises(SpecError) as info:
        from_dict({"kind": "mbconv", "expand_ratio": "six", "skip": 1})
    paths = {e.path for e in info.value.errors}
    assert paths == {"out_channels", "expand_ratio", "skip"}
    # a type error in one field does not hide a bound error in another
    with pytest.raises(SpecError) as info:
        from_dict({"kind": "mbconv", "out_channels": "x", "kernel_size": 4, "stride": 0})
    assert {e.path for e in info.value.errors} == {"out_channels", "kernel_size", "stride"}
    with pytest.raises(SpecError) as info:
        from_dict([1, 2, 3])
    assert "must be an object" in str(info.value)


def test_empty_network_is_rejected() -> None:
    with pytest.raises(SpecError, match="at least one block"):
        from_dict({"kind": "network"})


def test_round_trip_is_canonical() -> None:
    net = NetworkSpec(
        stem=(ConvSpec(32, 3, 2, act="silu"),),
        stages=((MBConvSpec(16, 1, 3, 1, se_ratio=0.25), MBConvSpec(24, 6.0, 5, 2)),),
        head=(PoolSpec("global_avg", flatten=True), LinearSpec(1000)),
    )
    d = to_dict(net)
    assert from_dict(json.loads(json.dumps(d))) == net
    # an int given for a float field serializes like the float: one cache key
    assert to_dict(MBConvSpec(16, 1)) == to_dict(MBConvSpec(16, 1.0))
    assert json.dumps(to_dict(MBConvSpec(16, 1)), sort_keys=True) == json.dumps(
        to_dict(MBConvSpec(16, 1.0)), sort_keys=True)


def test_light_layers_import_no_torch_grpc_or_database() -> None:
    code = (
        "import sys, cost_engine, cost_engine.spec, cost_engine.expand;"
        "cost_engine.analyze(cost_engine.spec.NetworkSpec(stages=((cost_engine.spec.ConvSpec(8),),)),"
        " resolution=8);"
        "bad = [m for m in ('torch', 'grpc', 'sqlalchemy', 'google.protobuf') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_memoized_spec_hash_is_never_shipped_to_another_process() -> None:
    """Specs memoize their hash; it comes from this process's (randomized) string hashing, so a
    pickled spec (the analysis processes get specs by pickle) must not carry it."""
    import os
    import pickle
    import subprocess
    import sys

    from cost_engine.families import resolve

    spec = resolve("efficientnet_b0")
    h = hash(spec)
    assert hash(spec) == h and "_spec_hash" in spec.__dict__
    blob = pickle.dumps(spec)
    back = pickle.loads(blob)
    assert "_spec_hash" not in back.__dict__ and back == spec and hash(back) == h
    code = ("import pickle, sys; s = pickle.loads(sys.stdin.buffer.read()); "
            "from cost_engine.families import resolve; r = resolve('efficientnet_b0'); "
            "print(hash(s) == hash(r), s == r, {s: 1}.get(r))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, env=env, check=True)
    assert out.stdout.split() == [b"True", b"True", b"1"]
