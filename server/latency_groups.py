"""What the latency queues (local and fleet) and the oracle's latency parts share: which
requests share worker sessions (those whose resolved settings are equal), and a future that is
answered already (a cache hit).

Its own module because the queues must not import the oracle that owns them."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

__all__ = ["done_future", "settings_id"]


def done_future(value: Any) -> Future:
    f: Future = Future()
    f.set_result(value)
    return f


def settings_id(s: Any) -> Any:
    """One hashable id per resolved settings: requests with equal ids share worker sessions."""
    try:
        return tuple(sorted((k, repr(v)) for k, v in s.to_dict().items()))
    except Exception:
        return id(s)
