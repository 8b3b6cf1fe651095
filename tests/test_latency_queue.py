"""The measurement queue: one measurement per key however many clients ask, drops, limits."""

from __future__ import annotations

import threading
import time
from unittest import mock

import pytest

from cost_engine.latency import (
    Calibration,
    LatencySettings,
    MeasurementError,
    MemoryCache,
    UnknownDevice,
    available_devices,
    latency_key,
    measure,
)
from cost_engine.latency.testing import FakeWorker
from cost_engine.spec import ConvSpec, NetworkSpec, PoolSpec, SpecError
from cost_oracle.server.latency_queue import MeasurementDropped, MeasurementQueue, QueueFull

TINY = ConvSpec(out_channels=8)
S = LatencySettings(threads=1, in_channels=8, resolution=16)


def net(width: int) -> NetworkSpec:
    return NetworkSpec(stem=(ConvSpec(out_channels=width, stride=2),), stages=((ConvSpec(out_channels=width),),),
                       head=(PoolSpec(mode="global_avg", flatten=True),), resolution=32)


def wait_for(cond, timeout: float = 10.0) -> None:
    end = time.time() + timeout
    while not cond():
        if time.time() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


@mock.patch("cost_engine.latency.result.NOISY_REL_CI", float("inf"))  # a noisy result is re-measured
def test_two_clients_asking_at_once_cause_exactly_one_real_measurement():
    calls = []

    def counting_measure(*args, **kwargs):
        calls.append(1)
        return measure(*args, **kwargs)

    cache = MemoryCache()
    barrier = threading.Barrier(2)
    futures = []

    with MeasurementQueue(cache, sessions=1, time_cap_s=0.1, measure_fn=counting_measure) as q:
        def client():
            barrier.wait()
            futures.append(q.submit(TINY, S))

        threads = [threading.Thread(target=client) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results = [f.result(timeout=300) for f in futures]
        assert len(calls) == 1
        assert futures[0] is futures[1]
        assert results[0].median_ms == results[1].median_ms and results[0].source == "measured"
        assert q.stats()["coalesced"] == 1 and q.stats()["done"] == 1
        # a later client is answered from the cache, without queueing
        later = q.submit(TINY, S)
        assert later.done() and later.result().cached and len(calls) == 1


def test_many_clients_one_measurement_with_a_simulated_device():
    cache = MemoryCache()
    with FakeWorker(delay_s=0.3) as fake, MeasurementQueue(cache, sessions=2) as q:
        futures = [q.submit(net(16), LatencySettings(threads=1)) for _ in range(8)]
        assert len({id(f) for f in futures}) == 1
        futures[0].result(timeout=30)
        assert fake.sessions == 2  # one measurement of two sessions, not eight
        assert q.stats()["coalesced"] == 7


def test_full_queue_is_resource_exhausted_and_identical_requests_still_coalesce():
    with FakeWorker(delay_s=0.5), MeasurementQueue(MemoryCache(), sessions=1, max_pending=1) as q:
        s = LatencySettings(threads=1)
        first = q.submit(net(8), s)
        wait_for(lambda: q.stats()["in_flight"] == 1)
        second = q.submit(net(16), s)
        with pytest.raises(QueueFull) as err:
            q.submit(net(24), s)
        assert err.value.code == "RESOURCE_EXHAUSTED"
        assert q.submit(net(16), s) is second
        first.result(timeout=30)
        second.result(timeout=30)


def test_unknown_device_and_bad_settings_are_refused_at_submit():
    q = MeasurementQueue(MemoryCache())
    missing = f"cuda:{len(available_devices()) + 5}"
    with pytest.raises(UnknownDevice):
        q.submit(TINY, LatencySettings(device=missing, in_channels=8, resolution=16))
    with pytest.raises(SpecError) as err:
        q.submit(TINY, LatencySettings(dtype="int4", in_channels=8, resolution=16))
    assert err.value.errors[0].path == "dtype"
    with pytest.raises(SpecError):
        q.submit(ConvSpec(out_channels=8, kernel_size=40), S)
    assert q.stats()["pending"] == 0
    q.close()


def test_a_request_whose_client_has_gone_is_dropped_before_it_runs():
    with FakeWorker(delay_s=0.5) as fake, MeasurementQueue(MemoryCache(), sessions=1) as q:
        s = LatencySettings(threads=1)
        running = q.submit(net(8), s)
        wait_for(lambda: q.stats()["in_flight"] == 1)
        active = {"yes": True}
        gone = q.submit(net(16), s, is_active=lambda: active["yes"])
        active["yes"] = False
        with pytest.raises(MeasurementDropped) as err:
            gone.result(timeout=30)
        assert err.value.reason == "client_gone" and err.value.code == "CANCELLED"
        running.result(timeout=30)
        assert fake.sessions == 1
        assert q.stats()["dropped"] == 1


def test_a_coalesced_job_runs_while_any_of_its_clients_remains():
    with FakeWorker(delay_s=0.3) as fake, MeasurementQueue(MemoryCache(), sessions=1) as q:
        s = LatencySettings(threads=1)
        running = q.submit(net(8), s)
        wait_for(lambda: q.stats()["in_flight"] == 1)
        f1 = q.submit(net(16), s, is_active=lambda: False)
        f2 = q.submit(net(16), s, is_active=lambda: True)
        assert f1 is f2
        assert f2.result(timeout=30).source == "measured"
        running.result(timeout=30)
        assert fake.sessions == 2


def test_a_deadline_that_cannot_be_met_is_dropped():
    with FakeWorker(), MeasurementQueue(MemoryCache(), sessions=3) as q:
        f = q.submit(net(8), LatencySettings(threads=1), deadline=time.time() + 0.01)
        with pytest.raises(MeasurementDropped) as err:
            f.result(timeout=5)
        assert err.value.reason == "deadline" and err.value.code == "DEADLINE_EXCEEDED"
        assert q.stats()["dropped"] == 1


def test_worker_failures_reach_every_waiting_client():
    with FakeWorker(fail=True), MeasurementQueue(MemoryCache(), sessions=1) as q:
        f = q.submit(net(8), LatencySettings(threads=1))
        with pytest.raises(MeasurementError):
            f.result(timeout=30)
        assert q.stats()["failed"] == 1


def test_predictions_and_calibrations_go_through_the_device_worker_once():
    cache = MemoryCache()
    s = LatencySettings(threads=1)
    with FakeWorker() as fake, MeasurementQueue(cache, sessions=1) as q:
        p = q.submit_prediction(net(8), s, "block_table").result(timeout=30)
        assert p.source == "predicted" and p.method == "block_table" and p.uncertainty_ms > 0
        sessions = fake.sessions
        again = q.submit_prediction(net(8), s, "block_table")
        assert again.done() and fake.sessions == sessions  # every block is in the table now
        cal = q.submit_calibration("cpu", "float32", 1).result(timeout=30)
        assert isinstance(cal, Calibration) and cal.peak_flops > 0
        assert q.submit_calibration("cpu", "float32", 1).result().cached
        roof = q.submit_prediction(net(8), s, "roofline")
        assert roof.done() and roof.result().method == "roofline"  # calibration cached: answered at once
        with pytest.raises(SpecError):
            q.submit_prediction(net(8), s, "magic")


def test_stats_show_the_queue_per_device():
    with FakeWorker(delay_s=0.3), MeasurementQueue(MemoryCache(), sessions=1, max_pending=7) as q:
        s = LatencySettings(threads=1)
        futures = [q.submit(net(w), s) for w in (8, 16, 24)]
        stats = q.stats()
        assert stats["max_pending"] == 7
        assert stats["pending"] + stats["in_flight"] == 3
        assert stats["devices"]["cpu"]["pending"] + stats["devices"]["cpu"]["in_flight"] == 3
        for f in futures:
            f.result(timeout=30)
        assert q.stats()["done"] == 3 and q.stats()["pending"] == 0
        assert q.stats()["devices"]["cpu"]["busy_s"] > 0
    assert latency_key(net(8), s) != latency_key(net(16), s)


def test_a_batch_is_measured_in_shared_sessions_with_cached_and_queued_members_reused():
    cache = MemoryCache()
    s = LatencySettings(threads=1)
    nets = [net(w) for w in (8, 16, 24, 32, 40)]
    with FakeWorker(delay_s=0.3) as fake, MeasurementQueue(cache, sessions=2, max_pending=4) as q:
        q.submit(nets[0], s).result(timeout=30)  # cached now
        assert fake.sessions == 2
        running = q.submit(nets[1], s)  # being measured when the batch arrives
        wait_for(lambda: q.stats()["in_flight"] == 1)
        futures = q.submit_many(nets, s)
        assert futures[0].done() and futures[0].result().cached
        assert futures[1] is running
        results = [f.result(timeout=30) for f in futures]
        # nets[1] alone (2 sessions), then nets[2:] together (2 sessions), not 2 sessions each
        assert fake.sessions == 2 + 2 + 2
        assert len(fake.jobs[-1]["items"]) == 3
        assert [r.key for r in results] == [latency_key(n, s) for n in nets]
        assert all(r.source == "measured" for r in results)
        with pytest.raises(QueueFull):
            q.submit_many([net(w) for w in (48, 56, 64, 72, 80)], s)  # 5 more > max_pending 4
