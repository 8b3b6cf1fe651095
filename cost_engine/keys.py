"""Cache keys: sha256 of the canonical JSON of (normalized spec, context, cost-model version).

Why canonical JSON and never serialized protobuf: protobuf bytes are not canonical (field order,
default-value elision, unknown fields and map ordering vary between library versions and
languages), so the same candidate could get two keys. JSON with sorted keys, fixed separators,
ASCII escapes and ``repr`` floats is one byte string per value, in any Python and any process.

What makes two requests the same is decided *before* this function: spec dicts come from
``cost_engine.spec.to_dict`` (every field, defaults included, float fields written as floats, so
``expand_ratio=6`` and ``expand_ratio=6.0`` are one key). The cost-model version is part of the
hashed material, so a new cost model can never be served a row computed by an old one.

Entries of different kinds (costs, latency measurements, calibrations) share one table, so their
contexts must differ: a latency context carries the device fingerprint and measurement settings,
which a cost context never has.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cost_engine.spec.base import Spec, to_dict
from cost_engine.spec.network import NetworkSpec

__all__ = ["cache_key", "cache_key_of_json", "canonical_json", "network_json", "spec_dict", "spec_json"]


def canonical_json(value: Any) -> str:
    """The one JSON text of ``value``: sorted keys, no whitespace, ASCII only, finite numbers only.

    Raises ``ValueError`` for NaN or infinity (they have no JSON form, and a key must not depend
    on how a library spells them) and ``TypeError`` for values JSON cannot represent.
    """
    return _ENCODER.encode(value)


# one encoder object: json.dumps with options builds a new one per call, a third of a small key's cost
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def cache_key(spec_dict: Mapping[str, Any], context: Mapping[str, Any], version: str) -> str:
    """sha256 hex digest (64 characters) of the canonical JSON of ``{"spec", "context", "version"}``."""
    if not isinstance(spec_dict, Mapping):
        raise TypeError(f"spec_dict must be a mapping (from cost_engine.spec.to_dict), got {type(spec_dict).__name__}")
    return cache_key_of_json(canonical_json(spec_dict), context, version)


def cache_key_of_json(spec_json: str, context: Mapping[str, Any], version: str) -> str:
    """:func:`cache_key` from the spec's canonical JSON text (which a server assembles from its
    blocks' memoized texts): the hashed material is the same canonical JSON byte for byte, since
    ``{"spec", "context", "version"}`` with sorted keys is these three parts in this order."""
    if not isinstance(context, Mapping):
        raise TypeError(f"context must be a mapping, got {type(context).__name__}")
    if not isinstance(version, str) or not version:
        raise TypeError(f"version must be a non-empty string, got {version!r}")
    material = f'{{"context":{canonical_json(context)},"spec":{spec_json},"version":{canonical_json(version)}}}'
    return hashlib.sha256(material.encode("ascii")).hexdigest()


# -- a spec's canonical JSON, assembled from memoized blocks ----------------------------------
@functools.lru_cache(maxsize=65536)
def _block_dict(spec: Spec) -> dict[str, Any]:
    return to_dict(spec)


def _plain(value: Any) -> Any:
    if isinstance(value, Spec):
        return _block_dict(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def spec_dict(spec: Spec) -> dict[str, Any]:
    """``to_dict(spec)`` with each block's dict memoized: candidates of a search space share most of
    their blocks, and a network's dict is its fields with its blocks' dicts in place (a test checks
    the equality on every built-in and on random spaces). Read-only result."""
    if not isinstance(spec, NetworkSpec):
        return _block_dict(spec)
    out: dict[str, Any] = {"kind": spec.kind}
    for f in dataclasses.fields(spec):
        out[f.name] = _plain(getattr(spec, f.name))
    return out


@functools.lru_cache(maxsize=65536)
def _block_json(spec: Spec) -> str:
    return canonical_json(_block_dict(spec))


def spec_json(spec: Spec) -> str:
    """``canonical_json(to_dict(spec))``, assembled from each block's memoized text: hashing a new
    candidate of a search space then costs only its own few fields (a test checks the equality
    byte for byte on every built-in and on random spaces)."""
    if not isinstance(spec, NetworkSpec):
        return _block_json(spec)
    return network_json([_block_json(b) for b in spec.stem],
                        ["[" + ",".join([_block_json(b) for b in s]) + "]" for s in spec.stages],
                        [_block_json(b) for b in spec.head], spec.in_channels, spec.resolution)


def network_json(stem: Sequence[str], stages: Sequence[str], head: Sequence[str], in_channels: int,
                 resolution: int) -> str:
    """A network's canonical JSON from its blocks' canonical texts (what a server that reads blocks
    off the wire has at hand; ``stages``: each stage's JSON array of its blocks' texts): the fields
    in sorted order, as ``canonical_json`` writes them."""
    return (f'{{"head":[{",".join(head)}],"in_channels":{int(in_channels)},"kind":"network",'
            f'"resolution":{int(resolution)},"stages":[{",".join(stages)}],"stem":[{",".join(stem)}]}}')


# network_json writes these fields and no others: a new NetworkSpec field must be added there
if tuple(sorted(("kind", *(f.name for f in dataclasses.fields(NetworkSpec))))) != (
        "head", "in_channels", "kind", "resolution", "stages", "stem"):
    raise RuntimeError("cost_engine.keys.network_json does not write every NetworkSpec field")
