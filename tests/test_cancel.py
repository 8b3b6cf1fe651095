"""How the server counts work it stopped: by deadline or by cancellation, before it goes idle.

The gRPC-level tests (``test_server_hostile.py``) race a real deadline against real work; these
pin the two paths that race can take, deterministically: a checkpoint that finds the call over,
and a stream that gRPC closes between two messages (the generator gets ``GeneratorExit`` at its
``yield``, no checkpoint runs)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from cost_oracle.contract.errors import Cancelled, DeadlineExceeded
from cost_oracle.server import cancel
from cost_oracle.server.gate import RequestGate
from cost_oracle.server.servicer import CostOracleServicer


class _Context:
    """The part of ``grpc.ServicerContext`` the stream path reads."""

    def __init__(self, remaining_s: float):
        self.deadline = time.time() + remaining_s
        self.active = True

    def time_remaining(self) -> float:
        return self.deadline - time.time()

    def is_active(self) -> bool:
        return self.active

    def abort_with_status(self, status) -> None:  # pragma: no cover - only on a handler error
        raise AssertionError(f"unexpected abort: {status}")


def _servicer(gate: RequestGate) -> CostOracleServicer:
    return CostOracleServicer(SimpleNamespace(gate=gate), log_requests=False)


def _counts() -> dict[str, int]:
    return dict(cancel.stopped)


@pytest.mark.parametrize("close_at, reason", [(0.05, "deadline"), (-0.02, "deadline"), (None, "cancelled")])
def test_a_stream_closed_between_messages_counts_why(close_at: float | None, reason: str) -> None:
    """A call whose deadline passed (or is within gRPC's clock skew of passing) while a message
    was on its way ran out of time; a close long before its deadline is the client going away.
    ``close_at``: seconds after (negative: before) the deadline at which gRPC closes the stream."""
    gate = RequestGate(workers=2)
    seen: list[int] = []

    def messages():
        yield "first"
        yield "second"  # pragma: no cover - the stream is closed before it is asked for

    ctx = _Context(remaining_s=0.3 if close_at is not None else 60.0)
    before = _counts()
    stream = _servicer(gate)._stream("Sweep", object(), ctx, messages)
    assert next(stream) == "first" and gate.working_now == 1
    if close_at is not None:
        time.sleep(max(0.0, ctx.deadline + close_at - time.time()))
    ctx.active = False

    import cost_oracle.server.servicer as servicer_mod

    def note_and_look(why: str) -> None:
        seen.append(gate.working_now)
        cancel.note_stopped(why)

    real, servicer_mod.note_stopped = servicer_mod.note_stopped, note_and_look
    try:
        stream.close()
    finally:
        servicer_mod.note_stopped = real
    after = _counts()
    assert after[reason] == before[reason] + 1
    assert sum(after.values()) == sum(before.values()) + 1
    assert seen == [1], "the stop must be counted while the request still holds its work slot"
    assert gate.working_now == 0


@pytest.mark.parametrize("deadline_in, reason, exc", [
    (-0.5, "deadline", DeadlineExceeded), (0.02, "deadline", DeadlineExceeded), (30.0, "cancelled", Cancelled)])
def test_a_checkpoint_on_an_ended_call_says_why(deadline_in: float, reason: str, exc: type) -> None:
    before = _counts()
    ended = deadline_in > 0  # a deadline already passed is seen on the clock, not through gRPC
    with cancel.watch(time.time() + deadline_in, (lambda: not ended) if ended else None), pytest.raises(exc):
        cancel.checkpoint(force=True)
    assert _counts()[reason] == before[reason] + 1


def test_outside_a_watched_call_a_checkpoint_does_nothing() -> None:
    before = _counts()
    for _ in range(100):
        cancel.checkpoint(force=True)
    assert _counts() == before
