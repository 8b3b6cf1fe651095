"""Which latency requests share worker sessions: those whose resolved settings are equal.

Its own module because the queue and both oracle mixins group by it, and the queue must not
import the oracle that owns it."""

from __future__ import annotations

from typing import Any

__all__ = ["settings_id"]


def settings_id(s: Any) -> Any:
    """One hashable id per resolved settings: requests with equal ids share worker sessions."""
    try:
        return tuple(sorted((k, repr(v)) for k, v in s.to_dict().items()))
    except Exception:
        return id(s)
