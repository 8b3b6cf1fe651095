"""Latency cache keys, with the cache's one convention (:func:`cost_engine.keys.cache_key`:
sha256 of canonical JSON). The context of a latency entry always carries the device fingerprint
and the resolved settings, so it can never collide with a static-cost entry of the same spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cost_engine.keys import cache_key

#: Bump when the timing protocol changes (warm-up, stopping rule, allocator settings, statistics):
#: numbers timed under another protocol are never served. 2: paired with a reference network
#: (``reference.py``), milliseconds from the learned anchor (``anchor.py``). 3: two reference
#: families (dense and mobile), chosen by the candidate's depthwise share.
PROTOCOL_VERSION = "3"
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


def entry_key(what: str, spec_dict: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    """Key of a latency-related entry; ``what`` (e.g. ``"latency"``) keeps kinds apart."""
    return cache_key(spec_dict, {"what": what, **context}, CACHE_VERSION)
