"""Prometheus metrics (issue 15): scraped from ``--metrics-port`` while requests run; the counters
move exactly as the requests did."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path

import grpc
import pytest

pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families

from cost_oracle.contract import convert
from cost_oracle.server.app import start
from cost_oracle.server.config import ServerConfig
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_count_the_requests_of_a_load(tmp_path: Path) -> None:
    srv = start(ServerConfig(db_url=f"sqlite:///{tmp_path / 'c.sqlite'}", port=0, metrics_port=0))
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
    try:
        assert srv.metrics_port
        before = scrape(srv.metrics_port)
        stub = oracle_pb2_grpc.CostOracleStub(channel)
        names = ["mobilenet_v2", "resnet18", "shufflenet_v2_x0_5", "fasternet_t0"]

        def client(i: int) -> None:
            for n in names:
                stub.GetCost(pb.GetCostRequest(candidate=convert.candidate_to_proto(n),
                                               context=pb.Context(resolution=64 + 32 * (i % 2))), timeout=60)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        during = scrape(srv.metrics_port)  # scraping while the load runs must work
        for t in threads:
            t.join()
        with pytest.raises(grpc.RpcError):
            stub.GetCost(pb.GetCostRequest(candidate=convert.candidate_to_proto("no_such_model")), timeout=30)
        after = scrape(srv.metrics_port)
    finally:
        channel.close()
        srv.stop(0)
    ok = ("cost_oracle_requests_total", (("code", "OK"), ("rpc", "GetCost")))
    bad = ("cost_oracle_requests_total", (("code", "INVALID_ARGUMENT"), ("rpc", "GetCost")))
    assert after[ok] - before.get(ok, 0) == 16 and after[bad] - before.get(bad, 0) == 1
    assert during.get(ok, 0) <= after[ok]
    assert after[("cost_oracle_request_seconds_count", (("rpc", "GetCost"),))] == 17
    # 8 distinct (name, resolution) pairs: 8 rows; every request a hit or a miss (two clients asking for
    # the same pair at the same moment can both miss), and every miss analyzed once
    hits, misses = after[("cost_oracle_cache_hits_total", ())], after[("cost_oracle_cache_misses_total", ())]
    assert after[("cost_oracle_cache_rows", (("kind", "cost"),))] == 8
    assert hits + misses == 16 and misses >= 8
    assert after[("cost_oracle_analyzed_total", ())] == misses and after[("cost_oracle_analysis_seconds_total", ())] > 0


def test_metrics_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(OSError, match=r"cannot serve metrics on 127\.0\.0\.1"):
            start(ServerConfig(db_url=f"sqlite:///{tmp_path / 'c.sqlite'}", port=0,
                               metrics_port=s.getsockname()[1]))
