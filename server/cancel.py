"""Stopping a request's CPU work when its deadline passes or its client goes away.

gRPC tells a handler that its call is over (``context.is_active()`` turns false, the deadline
passes) but cannot stop a thread that is counting: a sweep of 20,000 points or a cold batch of
10,000 networks would run on for seconds after the client gave up, holding a request thread
and the CPU. The servicer :func:`watch`\\ es each request; the loops that do work per item
(preparing candidates, analyzing, expanding a sweep) call :func:`checkpoint`, which raises
:class:`~cost_oracle.contract.errors.DeadlineExceeded` or
:class:`~cost_oracle.contract.errors.Cancelled` once the call is
over. A thread-local, so the engine's and the oracle's signatures stay free of it; outside a
watched request (in-process use) a checkpoint costs one attribute read.

A checkpoint looks at the clock and the client only every :data:`EVERY` calls: items cost
microseconds to milliseconds, so the work stops within a few milliseconds of the call's end.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from cost_oracle.contract.errors import Cancelled, DeadlineExceeded

__all__ = ["EVERY", "checkpoint", "ended_reason", "note_stopped", "stopped", "watch"]

#: calls of :func:`checkpoint` between two looks at the deadline and the client
EVERY = 16

_local = threading.local()
_lock = threading.Lock()
#: work stopped so far, by reason (reported in GetCacheStats counters)
stopped: dict[str, int] = {"deadline": 0, "cancelled": 0}


class _Watch:
    __slots__ = ("deadline", "is_active", "n")

    def __init__(self, deadline: float | None, is_active: Callable[[], bool] | None):
        self.deadline = deadline
        self.is_active = is_active
        self.n = 0


@contextlib.contextmanager
def watch(deadline: float | None, is_active: Callable[[], bool] | None) -> Iterator[None]:
    """Checkpoints in this thread, while the ``with`` lasts, stop at ``deadline`` (a
    ``time.time()``) or when ``is_active()`` turns false."""
    outer = getattr(_local, "watch", None)
    _local.watch = _Watch(deadline, is_active)
    try:
        yield
    finally:
        _local.watch = outer


#: seconds before its computed deadline within which an inactive call counts as timed out
DEADLINE_SLACK_S = 0.05


def checkpoint(force: bool = False) -> None:
    """Raise if the watched call is over (looks every :data:`EVERY` calls, or now if ``force``)."""
    w = getattr(_local, "watch", None)
    if w is None:
        return
    w.n += 1
    if not force and w.n % EVERY:
        return
    if w.deadline is not None and time.time() > w.deadline:
        note_stopped("deadline")
        raise DeadlineExceeded("the call's deadline passed; its work was stopped")
    if w.is_active is not None:
        try:
            active = bool(w.is_active())
        except Exception:
            active = False
        if not active:
            reason = ended_reason(w.deadline)
            note_stopped(reason)
            if reason == "deadline":
                raise DeadlineExceeded("the call's deadline passed; its work was stopped")
            raise Cancelled("the client cancelled the call; its work was stopped")


def ended_reason(deadline: float | None) -> str:
    """Why a call that gRPC has ended is over: ``deadline`` or ``cancelled``.

    gRPC ends a call at its deadline on its own clock, which can be a few ms ahead of the
    deadline this process computed: a call that went inactive at (or near) its deadline ran out
    of time, it was not cancelled. The same rule serves a checkpoint and a stream that gRPC
    closed between two messages."""
    if deadline is not None and time.time() > deadline - DEADLINE_SLACK_S:
        return "deadline"
    return "cancelled"


def note_stopped(reason: str) -> None:
    """Count work stopped early (``deadline`` or ``cancelled``)."""
    with _lock:
        stopped[reason] += 1
