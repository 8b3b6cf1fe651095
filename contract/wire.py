"""A serialized ``Candidate`` network straight to its spec and canonical JSON, block by block.

Why: converting a candidate through protobuf message objects costs a wrapper object and a
re-serialization per block (about 0.1 ms for a 20-block network), which was the largest part
of a cold batch after the analysis itself. A candidate of a search space is made of blocks
the server has mostly converted and validated before (``convert``'s block memo, keyed by a
block's serialized bytes, holding each block's spec and canonical JSON), so reading the
network's few fields off the wire and looking each block's bytes up is enough; a block not seen
yet is converted on its own by the memo. The network's canonical JSON (its cache key's
material) is assembled from the blocks' texts on the way.

Only the common, unambiguous shape is taken: a ``Candidate`` holding one ``network`` field,
whose fields are ``stem``/``stages``/``head``/``in_channels``/``resolution`` with their
declared wire types, every block of which converts. Anything else (an unknown field, a block
that does not decode or validate, a value the engine would refuse, bytes that do not parse)
returns None and the caller takes the full path, which reports every error with its field path.
So this module decides nothing the full path would decide differently: it only skips work.

It is also the one hand-written encoder of the service (the servicer's hot path): a serialized
message is the concatenation of its fields, and for a field that occurs twice the parser keeps
the last scalar value and merges sub-messages, so a cached report's bytes plus a few appended
fields (candidate label, cache_hit) is the report message for a request, and a batch response
is the concatenation of its length-delimited results. Every tag is taken from the descriptors
(:func:`tag_bytes`), so renumbering a field in the proto cannot break it silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cost_engine.keys import network_json
from cost_engine.spec.base import Spec
from cost_engine.spec.network import NetworkSpec
from costoracle.v1 import spec_pb2 as spb

__all__ = ["LEN", "VARINT", "len_field", "network_from_wire", "split_field", "tag_bytes", "varint"]

LEN = 2  # wire type of a length-delimited field
VARINT = 0
_LEN, _VARINT = LEN, VARINT


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
if max(_CAND_NETWORK, _STEM, _STAGES, _HEAD, _STAGE_BLOCKS, *_SCALARS) >= 0x80:  # read as one byte below
    raise RuntimeError("cost_oracle.contract.wire reads tags as one byte; a field number grew past 15")


class _Unusual(ValueError):
    """Not the common shape (or not a valid encoding): let the full path handle it."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the varint at ``pos``: the one decoder of this module; IndexError
    past the end, :class:`_Unusual` (a ValueError) for one longer than 64 bits."""
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


def _stage(raw: bytes, pos: int, stop: int,
           blocks: Mapping[bytes, tuple[Spec, str]]) -> tuple[tuple[Spec, ...], str] | None:
    """The blocks of the ``Stage`` message in ``raw[pos:stop]`` and its JSON array text, or None;
    KeyError for a block that does not convert. (A memo of whole stages by their bytes measured no
    faster: hashing the stage's bytes costs about what looking up its few blocks does.)"""
    specs: list[Spec] = []
    texts: list[str] = []
    while pos < stop:
        if raw[pos] != _STAGE_BLOCKS:
            return None
        n = raw[pos + 1]
        if n < 0x80:  # a block under 128 bytes (most are): no call for its length
            pos += 2
        else:
            n, pos = _varint(raw, pos + 1)
        if pos + n > stop:
            return None
        spec, text = blocks[raw[pos:pos + n]]
        specs.append(spec)
        texts.append(text)
        pos += n
    return tuple(specs), "[" + ",".join(texts) + "]"


def network_from_wire(raw: bytes, blocks: Mapping[bytes, tuple[Spec, str]],
                      shell_ok: Callable[[tuple[tuple[str, int], ...]], bool]) -> tuple[NetworkSpec, str] | None:
    """The ``NetworkSpec`` of serialized ``Candidate`` bytes and its canonical JSON, or None (take
    the full path).

    ``blocks``: (validated block spec, its canonical JSON) by the block's serialized bytes (a
    ``KeyError`` for a block that does not convert);
    ``shell_ok(scalars)``: whether the network's own scalar fields (as a sorted tuple of items)
    pass the engine's checks. One pass over the bytes, no intermediate lists of fields: this runs
    once per candidate of every cold batch.
    """
    stem: list[Spec] = []
    stages: list[tuple[Spec, ...]] = []
    head: list[Spec] = []
    stem_json: list[str] = []
    stages_json: list[str] = []
    head_json: list[str] = []
    scalars: dict[str, int] = {}
    try:
        if raw[0] != _CAND_NETWORK:
            return None
        n, pos = _varint(raw, 1)
        end = pos + n
        if end != len(raw):  # not exactly one network field
            return None
        while pos < end:
            tag = raw[pos]  # every tag taken here is one byte; a longer one matches none of them
            if tag == _STAGES:
                n, pos = _varint(raw, pos + 1)
                stop = pos + n
                if stop > end:
                    return None
                stage = _stage(raw, pos, stop, blocks)
                if stage is None:
                    return None
                stages.append(stage[0])
                stages_json.append(stage[1])
                pos = stop
            elif tag in (_STEM, _HEAD):
                n, pos = _varint(raw, pos + 1)
                if pos + n > end:
                    return None
                spec, text = blocks[raw[pos:pos + n]]
                (stem if tag == _STEM else head).append(spec)
                (stem_json if tag == _STEM else head_json).append(text)
                pos += n
            elif tag in _SCALARS:
                value, pos = _varint(raw, pos + 1)
                if value >= _MAX_SCALAR:
                    return None
                scalars[_SCALARS[tag]] = value  # the last occurrence wins, as in protobuf
            else:
                return None
    except (_Unusual, KeyError, IndexError):
        return None
    if not shell_ok(tuple(sorted(scalars.items()))):
        return None
    spec = NetworkSpec(stem=tuple(stem), stages=tuple(stages), head=tuple(head), **scalars)
    # the blocks were validated when first converted and the scalars just now: what is left of
    # validate(spec, recursive=False) is the network's own rule
    if spec.check():
        return None
    return spec, network_json(stem_json, stages_json, head_json, spec.in_channels, spec.resolution)


# -- encoding, and splitting a request's candidates off ------------------------------------------
def tag_bytes(message: Any, field: str, wire_type: int) -> bytes:
    """The encoded tag of ``message``'s ``field`` (its number from the descriptor)."""
    return varint(_tag(message, field, wire_type))


def varint(n: int) -> bytes:
    """The varint encoding of ``n`` >= 0 (the first 65,536 from a table: the hot path's lengths)."""
    if n < _SMALL:
        return _SMALL_VARINTS[n]
    return _varint_slow(n)


def _varint_slow(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


_SMALL = 1 << 16
_SMALL_VARINTS = [_varint_slow(i) for i in range(_SMALL)]


def len_field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its encoded tag (:func:`tag_bytes`), the length, the payload."""
    return tag + varint(len(payload)) + payload


def split_field(raw: bytes, number: int) -> tuple[bytes, list[bytes]]:
    """Split a serialized message into (the message without field ``number``, each occurrence of
    that length-delimited field in order). Raises ValueError/IndexError on malformed bytes."""
    parts: list[bytes] = []
    found: list[bytes] = []
    pos, end = 0, len(raw)
    one_byte_tag = number << 3 | 2 if number < 16 else -1
    while pos < end:
        start = pos
        if raw[pos] == one_byte_tag:  # the hot case (a batch's candidates): no calls
            n = raw[pos + 1]
            pos += 2
            if n >= 0x80:
                n, pos = _varint(raw, pos - 1)
            if pos + n > end:
                raise ValueError("truncated field")
            found.append(raw[pos:pos + n])
            pos += n
            continue
        tag, pos = _varint(raw, pos)
        wire = tag & 7
        if tag >> 3 == 0:
            raise ValueError("field number 0")
        if wire == 2 and tag >> 3 == number:
            n, pos = _varint(raw, pos)
            if pos + n > end:
                raise ValueError("truncated field")
            found.append(raw[pos:pos + n])
            pos += n
            continue
        if wire in _SCALAR_WIRES:
            pos = _skip_value(raw, pos, wire)
        elif wire == 3:  # an unknown group: skipped whole, as protobuf skips it
            pos = _skip_group(raw, pos, tag >> 3, end)
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("truncated field")
        parts.append(raw[start:pos])
    return b"".join(parts), found


#: nesting of unknown groups a request may carry (protobuf's own default recursion limit)
_MAX_GROUP_DEPTH = 100
#: wire types whose value is skipped without looking inside: varint, fixed64, length-delimited, fixed32
_SCALAR_WIRES = frozenset((0, 1, 2, 5))


def _skip_value(raw: bytes, pos: int, wire: int) -> int:
    """The position after the value of a field of one of :data:`_SCALAR_WIRES` starting at ``pos``."""
    if wire == 0:
        return _varint(raw, pos)[1]
    if wire == 2:
        n, pos = _varint(raw, pos)
        return pos + n
    return pos + (8 if wire == 1 else 4)


def _skip_group(raw: bytes, pos: int, number: int, end: int) -> int:
    """The position after the group that started before ``pos`` (field ``number``), nested
    groups included; ValueError for a group that never ends, ends with another number, or nests
    deeper than :data:`_MAX_GROUP_DEPTH`."""
    open_groups = [number]
    while True:
        if pos >= end:
            raise ValueError("truncated group")
        tag, pos = _varint(raw, pos)
        wire, num = tag & 7, tag >> 3
        if num == 0:
            raise ValueError("field number 0")
        if wire in _SCALAR_WIRES:
            pos = _skip_value(raw, pos, wire)
        elif wire == 3:
            open_groups.append(num)
            if len(open_groups) > _MAX_GROUP_DEPTH:
                raise ValueError("groups nested too deep")
        elif wire == 4:
            if open_groups.pop() != num:
                raise ValueError("a group ends with another field number")
            if not open_groups:
                return pos
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("truncated group")
