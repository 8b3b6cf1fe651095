"""Prometheus metrics of a running server, on their own HTTP port (``--metrics-port``; the
optional ``metrics`` extra, ``prometheus-client``), as Triton serves its own.

Exported (names prefixed ``cost_oracle_``):

* ``requests_total{rpc, code}`` and ``request_seconds{rpc}`` (a histogram): every RPC, observed
  where the servicer writes its request log line;
* ``cache_rows{kind}``, ``cache_hits_total``, ``cache_misses_total``, ``cache_writes_total``:
  read from the oracle's cache statistics at each scrape (a collector, so nothing is counted twice);
* ``analysis_seconds_total`` and ``analyzed_total``: the time the server spent analyzing cold
  candidates in its own process and how many;
* ``queue_pending{device}``, ``queue_in_flight{device}``, ``measurements_total{device}``,
  ``measurement_busy_seconds_total{device}``: the latency measurement queue.

Each server has its own registry, so several servers in one process (tests) do not collide.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Metrics", "start_metrics"]

#: request-latency buckets (seconds): a cached answer is ~1 ms, a cold batch seconds, a measurement minutes
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0)


class Metrics:
    """The server's metrics; ``observe`` per RPC, ``analyzed`` per cold analysis run."""

    def __init__(self, oracle: Any):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.oracle = oracle
        self.registry = CollectorRegistry()
        self.requests = Counter("cost_oracle_requests", "RPCs answered, by method and status code",
                                ("rpc", "code"), registry=self.registry)
        self.seconds = Histogram("cost_oracle_request_seconds", "RPC wall time, by method", ("rpc",),
                                 buckets=BUCKETS, registry=self.registry)
        self.analysis = Counter("cost_oracle_analysis_seconds", "seconds spent analyzing cold candidates in "
                                "the server process", registry=self.registry)
        self.analyzed_count = Counter("cost_oracle_analyzed", "cold candidates analyzed in the server process",
                                      registry=self.registry)
        self.registry.register(_StateCollector(oracle))
        self._lock = threading.Lock()

    def observe(self, rpc: str, code: str, seconds: float) -> None:
        self.requests.labels(rpc, code).inc()
        self.seconds.labels(rpc).observe(seconds)

    def analyzed(self, n: int, seconds: float) -> None:
        if n:
            self.analyzed_count.inc(n)
            self.analysis.inc(seconds)


class _StateCollector:
    """Cache and queue figures read at scrape time from the oracle's own statistics."""

    def __init__(self, oracle: Any):
        self.oracle = oracle

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        try:
            stats = self.oracle.cache_stats()
        except Exception:  # a database that is down: the scrape still answers, without these
            return
        rows = GaugeMetricFamily("cost_oracle_cache_rows", "rows in the cache database, by kind", labels=("kind",))
        for kind, n in sorted((stats.get("entries_by_kind") or {}).items()):
            rows.add_metric((kind,), float(n))
        yield rows
        for name in ("hits", "misses", "writes"):
            yield CounterMetricFamily(f"cost_oracle_cache_{name}", f"cache {name} of this server", value=stats[name])
        queue = stats.get("queue") or {}
        pending = GaugeMetricFamily("cost_oracle_queue_pending", "measurements waiting, by device", labels=("device",))
        flight = GaugeMetricFamily("cost_oracle_queue_in_flight", "measurements running, by device",
                                   labels=("device",))
        done = CounterMetricFamily("cost_oracle_measurements", "measurement jobs finished, by device",
                                   labels=("device",))
        busy = CounterMetricFamily("cost_oracle_measurement_busy_seconds", "seconds the device's worker spent "
                                   "measuring", labels=("device",))
        for device, d in sorted((queue.get("devices") or {}).items()):
            pending.add_metric((device,), float(d.get("pending", 0)))
            flight.add_metric((device,), float(d.get("in_flight", 0)))
            done.add_metric((device,), float(d.get("done", 0)))
            busy.add_metric((device,), float(d.get("busy_s", 0.0)))
        yield from (pending, flight, done, busy)


def start_metrics(oracle: Any, host: str, port: int) -> tuple[Metrics, Any, int]:
    """Metrics for ``oracle`` served on ``host:port`` (0: a free port): (metrics, http server, port)."""
    try:
        from prometheus_client import start_http_server
    except ImportError:
        raise OSError("--metrics-port needs prometheus-client, an optional dependency: install the 'metrics' "
                      "extra (pip install -e '.[metrics]')") from None
    metrics = Metrics(oracle)
    http, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return metrics, http, int(http.server_port)
