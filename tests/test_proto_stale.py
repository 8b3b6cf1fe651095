"""The committed generated code matches the protos, and the protos match the engine.

The generated Python package is committed (so a client needs no protoc), which means it can go
stale silently: this regenerates it with the one script into a temporary directory and compares
bytes. The contract must also carry every spec kind the engine registers, with field names and
types identical to the dataclasses, because conversion is generic by name (a renamed field would
otherwise be silently dropped or rejected) — so that is checked here too.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import typing
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor

import cost_engine.families.catalog  # noqa: F401  (registers every family's spec kinds)
from cost_engine.report import CostReport
from cost_engine.spec.base import SPEC_KINDS
from costoracle.v1 import oracle_pb2, spec_pb2

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "costoracle"


def _files(base: Path) -> dict[str, bytes]:
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def test_generated_code_is_current(tmp_path: Path) -> None:
    env = dict(os.environ)
    venv_python = ROOT / ".venv" / "bin" / "python"
    if venv_python.exists():
        env["PYTHON"] = str(venv_python)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    fresh = _files(tmp_path / "costoracle")
    committed = _files(GENERATED)
    assert sorted(fresh) == sorted(committed), "generated file set differs: run scripts/gen_proto.sh"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale generated files {stale}: run scripts/gen_proto.sh and commit"


_PROTO_TYPE = {int: FieldDescriptor.TYPE_INT64, float: FieldDescriptor.TYPE_DOUBLE,
               bool: FieldDescriptor.TYPE_BOOL, str: FieldDescriptor.TYPE_STRING}


def _block_fields() -> dict[str, FieldDescriptor]:
    return {f.name: f for f in spec_pb2.Block.DESCRIPTOR.oneofs_by_name["kind"].fields}


def test_every_engine_spec_kind_has_a_block_message() -> None:
    kinds = set(SPEC_KINDS) - {"network"}
    assert kinds <= set(_block_fields()), f"spec kinds missing from spec.proto Block: {kinds - set(_block_fields())}"
    assert set(_block_fields()) <= kinds, "spec.proto has Block kinds the engine does not register"


@pytest.mark.parametrize("kind", sorted(set(SPEC_KINDS) - {"network"}))
def test_block_message_fields_equal_dataclass_fields(kind: str) -> None:
    cls = SPEC_KINDS[kind]
    msg = _block_fields()[kind].message_type
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    assert [f.name for f in msg.fields] == names, f"{msg.name} fields must equal {cls.__name__} fields, in order"
    for f in msg.fields:
        assert f.has_presence, f"{msg.name}.{f.name} must be optional (unset = engine default)"
        assert f.type == _PROTO_TYPE[hints[f.name]], f"{msg.name}.{f.name} has the wrong proto type"


def test_network_message_fields_equal_dataclass_fields() -> None:
    cls = SPEC_KINDS["network"]
    msg = spec_pb2.NetworkSpec.DESCRIPTOR
    assert [f.name for f in msg.fields] == [f.name for f in dataclasses.fields(cls)]


def test_report_message_carries_every_engine_figure() -> None:
    from cost_engine import analyze

    keys = set(analyze("mobilenet_v2").to_dict())
    fields = set(oracle_pb2.CostReport.DESCRIPTOR.fields_by_name)
    assert keys <= fields, f"CostReport message lacks {keys - fields}"
    assert {"cache_hit", "cache_key", "sources", "latency", "cost_model_version"} <= fields
    assert CostReport is not None


def test_enums_start_with_unspecified_zero() -> None:
    for enum in list(oracle_pb2.DESCRIPTOR.enum_types_by_name.values()):
        zero = enum.values_by_number[0]
        assert zero.name.endswith("_UNSPECIFIED"), enum.name
