"""Latency cache keys, with the cache's one convention: sha256 of canonical JSON.

The convention is :func:`cost_engine.keys.cache_key`; it is restated here (a dozen lines, tested
equal) because the engine must not import the server package, whose cache pulls in a database
driver. The context of a latency entry always carries the device fingerprint and the resolved
settings, so it can never collide with a static-cost entry of the same spec.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

#: Bump when the timing protocol changes (warm-up, stopping rule, allocator settings, statistics):
#: numbers timed under another protocol are never served. 2: paired with a reference network
#: (``reference.py``), milliseconds from the learned anchor (``anchor.py``).
PROTOCOL_VERSION = "2"
#: the version column of every latency row
CACHE_VERSION = f"latency-{PROTOCOL_VERSION}"

KIND_MEASURED = "latency"
KIND_BLOCK = "latency_block"
KIND_CALIBRATION = "latency_calibration"
KIND_CANARY = "latency_canary"
KIND_RESIDUAL = "latency_residual"
KIND_REFERENCE = "latency_reference"
KIND_KERNEL = "latency_kernel"
KIND_KERNEL_MODEL = "latency_kernel_model"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def cache_key(spec_dict: Mapping[str, Any], context: Mapping[str, Any], version: str) -> str:
    material = canonical_json({"spec": spec_dict, "context": context, "version": version})
    return hashlib.sha256(material.encode("ascii")).hexdigest()


def entry_key(what: str, spec_dict: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """Key of a latency-related entry; ``what`` (e.g. ``"latency"``) keeps kinds apart."""
    return cache_key(spec_dict, {"what": what, **context}, CACHE_VERSION)
