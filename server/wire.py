"""A serialized ``Candidate`` network straight to its spec, when every block in it was seen before.

Why: converting a candidate through protobuf message objects costs a wrapper object and a
re-serialization per block (about 0.1 ms for a 20-block network), which was the largest part
of a cold batch after the analysis itself. A candidate of a search space is made of blocks
the server has already converted and validated (``convert``'s block memo, keyed by a block's
serialized bytes), so reading the network's few fields off the wire and looking each block's
bytes up is enough.

Only the common, unambiguous shape is taken: a ``Candidate`` holding one ``network`` field,
whose fields are ``stem``/``stages``/``head``/``in_channels``/``resolution`` with their
declared wire types, and every block's bytes already in the memo. Anything else (an unknown
field, a block never seen, a value the engine would refuse, bytes that do not parse) returns
None and the caller takes the full path, which reports every error with its field path. So
this module decides nothing the full path would decide differently: it only skips work.
"""

from __future__ import annotations

from typing import Any

from cost_engine.spec.base import Spec, validate
from cost_engine.spec.network import NetworkSpec
from costoracle.v1 import spec_pb2 as spb

__all__ = ["network_from_wire"]

_LEN = 2  # wire type of a length-delimited field
_VARINT = 0


def _tag(message: Any, field: str, wire_type: int) -> int:
    return message.DESCRIPTOR.fields_by_name[field].number << 3 | wire_type


_CAND_NETWORK = _tag(spb.Candidate, "network", _LEN)
_STEM = _tag(spb.NetworkSpec, "stem", _LEN)
_STAGES = _tag(spb.NetworkSpec, "stages", _LEN)
_HEAD = _tag(spb.NetworkSpec, "head", _LEN)
_SCALARS = {_tag(spb.NetworkSpec, "in_channels", _VARINT): "in_channels",
            _tag(spb.NetworkSpec, "resolution", _VARINT): "resolution"}
_STAGE_BLOCKS = _tag(spb.Stage, "blocks", _LEN)
_MAX_SCALAR = 1 << 31  # anything larger (or a negative int64) goes the full way


class _Unusual(Exception):
    """Not the common shape: let the full path handle it."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Unusual
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, Any]]:
    """(tag, bytes or int) of each field of one message level; raises _Unusual on anything else."""
    out: list[tuple[int, Any]] = []
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        wire_type = tag & 7
        if wire_type == _LEN:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise _Unusual
            out.append((tag, buf[pos:pos + n]))
            pos += n
        elif wire_type == _VARINT:
            value, pos = _varint(buf, pos)
            out.append((tag, value))
        else:
            raise _Unusual
    return out


def network_from_wire(raw: bytes, blocks: dict[bytes, Spec], shell_ok: Any) -> NetworkSpec | None:
    """The ``NetworkSpec`` of serialized ``Candidate`` bytes, or None (take the full path).

    ``blocks``: validated block specs by their serialized bytes; ``shell_ok(scalars)``: whether
    the network's own scalar fields (as a sorted tuple of items) pass the engine's checks.
    """
    try:
        top = _fields(raw)
        if len(top) != 1 or top[0][0] != _CAND_NETWORK:
            return None
        stem: list[Spec] = []
        stages: list[tuple[Spec, ...]] = []
        head: list[Spec] = []
        scalars: dict[str, int] = {}
        for tag, value in _fields(top[0][1]):
            if tag == _STAGES:
                stage = []
                for t, b in _fields(value):
                    if t != _STAGE_BLOCKS:
                        return None
                    stage.append(blocks[b])
                stages.append(tuple(stage))
            elif tag == _STEM:
                stem.append(blocks[value])
            elif tag == _HEAD:
                head.append(blocks[value])
            elif tag in _SCALARS and value < _MAX_SCALAR:
                scalars[_SCALARS[tag]] = value  # the last occurrence wins, as in protobuf
            else:
                return None
    except (_Unusual, KeyError, IndexError):
        return None
    if not shell_ok(tuple(sorted(scalars.items()))):
        return None
    spec = NetworkSpec(stem=tuple(stem), stages=tuple(stages), head=tuple(head), **scalars)
    return None if validate(spec, recursive=False) else spec
