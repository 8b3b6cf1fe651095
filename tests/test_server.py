"""The gRPC service through its real surface: a server subprocess on a free port, generated stubs.

Covers: cache hits (and after a restart), bad input of every sort (right code, field violations in
proto terms, the server keeps serving, no cache row written), request limits, Filter / Sweep /
StreamCostBatch against the engine, health and reflection, bearer-token auth with TLS, the
device precondition, and SIGTERM draining an in-flight call.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from test_server_harness import ServerProcess, health_status

from cost_engine import analyze
from cost_engine.families.efficientnet import efficientnet
from cost_engine.families.fasternet import fasternet
from cost_oracle.contract import convert
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import spec_pb2 as spb

MAX_BATCH = 40
MAX_MESSAGE = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    d = tmp_path_factory.mktemp("srv")
    srv = ServerProcess(f"sqlite:///{d / 'cache.sqlite'}", "--max-batch", str(MAX_BATCH), "--max-sweep", "60",
                        "--max-message-bytes", str(MAX_MESSAGE), log_dir=d).start()
    yield srv
    assert srv.stop() == 0


def cache_rows(srv: ServerProcess) -> int:
    path = srv.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM cost_oracle_cache_v1").fetchone()[0]


def cand(name: str) -> spb.Candidate:
    return spb.Candidate(builtin=name)


def engine(candidate, **ctx) -> dict:
    d = analyze(candidate, **ctx).to_dict()
    d.pop("candidate")
    return d


def figures(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in {"cache_hit", "cache_key", "sources", "detail", "latency",
                                                    "candidate"}}


def rich(err: grpc.RpcError) -> tuple[grpc.StatusCode, list[tuple[str, str]], list[str]]:
    """(code, field violations, quota subjects) of a failed call."""
    status = rpc_status.from_call(err)
    violations, quotas = [], []
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [(v.field, v.description) for v in bad.field_violations]
        if detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            q = error_details_pb2.QuotaFailure()
            detail.Unpack(q)
            quotas += [v.subject for v in q.violations]
    return err.code(), violations, quotas


# -- cache hits ---------------------------------------------------------------------------------
def test_second_query_hits_and_survives_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    req = pb.GetCostRequest(candidate=cand("efficientnet_b0"), context=pb.Context(batch_size=2))
    with ServerProcess(url, log_dir=tmp_path) as srv:
        stub = srv.stub()
        first = stub.GetCost(req, timeout=60).report
        second = stub.GetCost(req, timeout=60).report
    assert not first.cache_hit and second.cache_hit
    d1, d2 = convert.report_to_dict(first), convert.report_to_dict(second)
    assert figures(d1) == figures(d2) == engine("efficientnet_b0", batch_size=2)
    with ServerProcess(url, log_dir=tmp_path) as srv:
        third = srv.stub().GetCost(req, timeout=60).report
    assert third.cache_hit and figures(convert.report_to_dict(third)) == figures(d1)
    assert third.cache_key == first.cache_key
    assert '"method":"GetCost","status":"OK"' in srv.log() and '"cache_hit":true' in srv.log()


# -- bad input ----------------------------------------------------------------------------------
def _net(*blocks: spb.Block, **kw: int) -> spb.Candidate:
    return spb.Candidate(network=spb.NetworkSpec(stages=[spb.Stage(blocks=list(blocks))], **kw))


BAD_SINGLE = [
    # (request, expected code, expected violation paths)
    (pb.GetCostRequest(), grpc.StatusCode.INVALID_ARGUMENT, {"candidate"}),
    (pb.GetCostRequest(candidate=cand("no_such_net")), grpc.StatusCode.INVALID_ARGUMENT, {"candidate.builtin"}),
    (pb.GetCostRequest(candidate=_net(spb.Block())), grpc.StatusCode.INVALID_ARGUMENT,
     {"candidate.network.stages[0].blocks[0]"}),
    (pb.GetCostRequest(candidate=spb.Candidate(network=spb.NetworkSpec())), grpc.StatusCode.INVALID_ARGUMENT,
     {"candidate.network.stages"}),
    (pb.GetCostRequest(candidate=_net(spb.Block(mbconv=spb.MBConvSpec(out_channels=-8, kernel_size=10**12)),
                                      spb.Block(conv=spb.ConvSpec(out_channels=16, act="sparkle")),
                                      resolution=0)),
     grpc.StatusCode.INVALID_ARGUMENT,
     {"candidate.network.stages[0].blocks[0].mbconv.out_channels",
      "candidate.network.stages[0].blocks[0].mbconv.kernel_size",
      "candidate.network.stages[0].blocks[1].conv.act", "candidate.network.resolution"}),
    (pb.GetCostRequest(candidate=_net(spb.Block(conv=spb.ConvSpec()))), grpc.StatusCode.INVALID_ARGUMENT,
     {"candidate.network.stages[0].blocks[0].conv.out_channels"}),
    (pb.GetCostRequest(candidate=spb.Candidate(block=spb.Block(mbconv=spb.MBConvSpec(out_channels=8)))),
     grpc.StatusCode.INVALID_ARGUMENT, {"candidate.in_channels"}),
    (pb.GetCostRequest(candidate=cand("resnet18"), context=pb.Context(batch_size=0, resolution=10**9, dtype=99)),
     grpc.StatusCode.INVALID_ARGUMENT, {"context.dtype", "context.batch_size", "context.resolution"}),
    (pb.GetCostRequest(candidate=cand("resnet18"), context=pb.Context(device="cuda:7",
                                                                      latency=pb.LATENCY_MODE_PREDICT)),
     grpc.StatusCode.FAILED_PRECONDITION, {"context.device"}),
    (pb.GetCostRequest(candidate=cand("resnet18"), detail=42), grpc.StatusCode.INVALID_ARGUMENT, {"detail"}),
]


def test_bad_input_gets_code_and_field_violations_and_writes_nothing(server: ServerProcess) -> None:
    stub = server.stub()
    stub.GetCost(pb.GetCostRequest(candidate=cand("resnet18")), timeout=60)  # the schema exists
    before = cache_rows(server)
    for req, code, paths in BAD_SINGLE:
        with pytest.raises(grpc.RpcError) as e:
            stub.GetCost(req, timeout=60)
        got_code, violations, _ = rich(e.value)
        assert got_code == code, (req, e.value.details())
        assert {p for p, _ in violations} == paths, violations
        assert all(reason for _, reason in violations)
    assert cache_rows(server) == before
    assert health_status(server.channel()) == health_pb2.HealthCheckResponse.SERVING


def test_garbage_bytes(server: ServerProcess) -> None:
    ch = server.channel()
    for method in ("GetCost", "GetCostBatch", "Filter"):
        raw = ch.unary_unary(f"/costoracle.v1.CostOracle/{method}", request_serializer=lambda b: b,
                             response_deserializer=lambda b: b)
        for blob in (b"\xff\xff\xff\xff\x0f", b"\x0a\xff\xff\xff\x7f", bytes(range(256)) * 3):
            with pytest.raises(grpc.RpcError) as e:
                raw(blob, timeout=30)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    stream = ch.unary_stream("/costoracle.v1.CostOracle/Sweep", request_serializer=lambda b: b,
                             response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        list(stream(b"\xff\xff\xff\xff\x0f", timeout=30))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    r = server.stub().GetCost(pb.GetCostRequest(candidate=cand("mobilenet_v2")), timeout=60)
    assert r.report.macs == analyze("mobilenet_v2").macs


def test_batch_with_bad_items_and_limits(server: ServerProcess) -> None:
    stub = server.stub()
    before = cache_rows(server)
    cands = [cand("resnet18"), _net(spb.Block(mbconv=spb.MBConvSpec(out_channels=16, stride=99))), cand("nope"),
             cand("shufflenet_v2_x1_0")]
    resp = stub.GetCostBatch(pb.GetCostBatchRequest(candidates=cands, detail=pb.DETAIL_SCALARS), timeout=60)
    kinds = [r.WhichOneof("result") for r in resp.results]
    assert kinds == ["report", "error", "error", "report"]
    err = convert.status_to_error(resp.results[1].error)
    assert err.code == "INVALID_ARGUMENT"
    assert err.violations[0][0] == "candidates[1].network.stages[0].blocks[0].mbconv.stride"
    assert convert.status_to_error(resp.results[2].error).violations[0][0] == "candidates[2].builtin"
    assert resp.results[3].report.flops == analyze("shufflenet_v2_x1_0").flops
    new_rows = cache_rows(server) - before
    assert new_rows <= 1  # shufflenet may be new; resnet18 was cached; the bad ones never

    with pytest.raises(grpc.RpcError) as e:
        stub.GetCostBatch(pb.GetCostBatchRequest(candidates=[cand("resnet18")] * (MAX_BATCH + 1)), timeout=60)
    code, _, quotas = rich(e.value)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and quotas == ["max_batch_size"]
    # a request message over the server's limit is refused by the transport with the same code
    huge = pb.GetCostBatchRequest(candidates=[cand("x" * 1000)] * 1100)
    assert huge.ByteSize() > MAX_MESSAGE
    with pytest.raises(grpc.RpcError) as e:
        stub.GetCostBatch(huge, timeout=60)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # a response that would be over the limit is refused, with the hint in the message
    big = pb.GetCostBatchRequest(candidates=[cand("efficientnet_b7")] * MAX_BATCH, detail=pb.DETAIL_FULL)
    with pytest.raises(grpc.RpcError) as e:
        stub.GetCostBatch(big, timeout=120)
    code, _, quotas = rich(e.value)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and quotas == ["max_message_bytes"]
    assert health_status(server.channel()) == health_pb2.HealthCheckResponse.SERVING


# -- batches, streams, filters, sweeps against the engine --------------------------------------
def variants() -> list:
    return [efficientnet(w, d, r) for w, d, r in ((1.0, 1.0, 160), (1.1, 1.0, 192), (0.9, 1.2, 224))] + \
        [fasternet(32, (1, 1, 2, 1), n_div=n) for n in (2, 4)]


def test_batch_and_stream_equal_the_engine(server: ServerProcess) -> None:
    stub = server.stub()
    specs = variants()
    names = ["resnet18", "mobilenet_v2", "regnet_x_400mf"]
    cands = [convert.candidate_to_proto(s) for s in specs] + [cand(n) for n in names]
    ctx = pb.Context(batch_size=3, dtype=pb.DTYPE_FLOAT16)
    batch = stub.GetCostBatch(pb.GetCostBatchRequest(candidates=cands, context=ctx, detail=pb.DETAIL_TOTALS),
                              timeout=120)
    expect = [engine(c, batch_size=3, dtype="float16") for c in [*specs, *names]]
    for r, e in zip(batch.results, expect, strict=True):
        got = convert.report_to_dict(r.report)
        e = {k: v for k, v in e.items() if k != "by_module"}
        assert figures(got) == e
    chunks = list(stub.StreamCostBatch(pb.StreamCostBatchRequest(candidates=cands, context=ctx, chunk_size=3,
                                                                 detail=pb.DETAIL_TOTALS), timeout=120))
    assert [c.offset for c in chunks] == [0, 3, 6] and all(c.total == len(cands) for c in chunks)
    streamed = [r for c in chunks for r in c.results]
    assert [r.report.macs for r in streamed] == [r.report.macs for r in batch.results]
    assert all(r.report.cache_hit for r in streamed)


def test_a_batch_asked_again_is_answered_alike_and_other_contexts_are_not_mixed_up(server: ServerProcess) -> None:
    """A search loop re-sends the same batch: from the third time on every candidate is answered
    from memory by its bytes. The answers must stay byte-identical hits, be counted as hits, and
    never leak into another context, detail or batch."""
    stub = server.stub()
    specs = [fasternet(24, (1, 1, 1, 1), n_div=n) for n in (2, 4, 8)] + [efficientnet(1.0, 1.0, 96)]
    cands = [convert.candidate_to_proto(s) for s in specs] + [cand("resnet18")]
    req = pb.GetCostBatchRequest(candidates=cands, context=pb.Context(batch_size=2), detail=pb.DETAIL_SCALARS)
    answers = [stub.GetCostBatch(req, timeout=120) for _ in range(4)]
    assert all(r.report.cache_hit for a in answers[1:] for r in a.results)
    assert answers[1].SerializeToString() == answers[2].SerializeToString() == answers[3].SerializeToString()
    before = stub.GetCacheStats(pb.GetCacheStatsRequest(), timeout=60).hits
    stub.GetCostBatch(req, timeout=120)
    assert stub.GetCacheStats(pb.GetCacheStatsRequest(), timeout=60).hits == before + len(cands)
    for r, c in zip(answers[3].results, [*specs, "resnet18"], strict=True):
        got, want = figures(convert.report_to_dict(r.report)), engine(c, batch_size=2)
        assert {"macs", "flops", "params", "peak_activation_bytes"} <= got.keys()
        assert got == {k: want[k] for k in got}
    # another context, another detail, and the same batch with one candidate more: right answers
    other = stub.GetCostBatch(pb.GetCostBatchRequest(candidates=cands, context=pb.Context(batch_size=3)), timeout=120)
    assert [r.report.macs for r in other.results] == [engine(c, batch_size=3)["macs"] for c in [*specs, "resnet18"]]
    totals = stub.GetCostBatch(pb.GetCostBatchRequest(candidates=cands, context=pb.Context(batch_size=2),
                                                      detail=pb.DETAIL_TOTALS), timeout=120)
    assert all(r.report.views for r in totals.results) and not any(r.report.views for r in answers[3].results)
    more = stub.GetCostBatch(pb.GetCostBatchRequest(candidates=[*cands, cand("mobilenet_v2")],
                                                    context=pb.Context(batch_size=2), detail=pb.DETAIL_SCALARS),
                             timeout=120)
    assert [r.report.cache_hit for r in more.results] == [True] * len(cands) + [False]
    assert more.results[-1].report.macs == engine("mobilenet_v2", batch_size=2)["macs"]


def test_filter_over_rpc_is_exactly_the_engine(server: ServerProcess) -> None:
    names = ["efficientnet_b0", "mobilenet_v2", "resnet18", "resnet50", "fasternet_t0", "shufflenet_v2_x0_5",
             "regnet_y_400mf"]
    budget = pb.Budget(max_flops=2_000_000_000, max_params=10_000_000)
    resp = server.stub().Filter(pb.FilterRequest(candidates=[cand(n) for n in names], budget=budget,
                                                 pareto_fields=[pb.COST_FIELD_FLOPS, pb.COST_FIELD_PARAMS],
                                                 include_reports=True, detail=pb.DETAIL_SCALARS), timeout=120)
    expect = [i for i, n in enumerate(names)
              if analyze(n).flops <= 2_000_000_000 and analyze(n).params <= 10_000_000]
    assert list(resp.feasible) == expect
    for i, r in enumerate(resp.results):
        assert r.index == i and r.feasible == (i in expect)
        cons = {c.name: c for c in r.constraints}
        assert cons["max_flops"].value == analyze(names[i]).flops - 2_000_000_000
        assert r.report.params == analyze(names[i]).params
    assert set(resp.pareto_front) <= set(expect) and resp.pareto_front


def test_sweep_over_rpc_is_exactly_the_engine(server: ServerProcess) -> None:
    req = pb.SweepRequest(fasternet=pb.FasterNetSpace(n_div=[2, 4, 8], mlp_ratio=[1.0, 2.0],
                                                      depths=[pb.Depths(depths=[1, 1, 2, 1])], embed_dim=[32, 48]),
                          budget=pb.Budget(max_macs=150_000_000), chunk_size=5, include_specs=True)
    msgs = list(server.stub().Sweep(req, timeout=300))
    assert msgs[-1].done and not any(m.done for m in msgs[:-1])
    points = [p for m in msgs[:-1] for p in m.points]
    assert len(points) == msgs[-1].total == 12 and [p.index for p in points] == list(range(12))
    feasible = []
    for p in points:
        spec = fasternet(int(p.params["embed_dim"]), (1, 1, 2, 1), n_div=int(p.params["n_div"]),
                         mlp_ratio=p.params["mlp_ratio"], act="gelu")
        assert convert.network_from_proto(p.spec, "spec") == spec
        ok = analyze(spec).macs <= 150_000_000
        assert p.result.feasible == ok
        if ok:
            feasible.append(p.index)
    assert list(msgs[-1].feasible) == feasible
    with pytest.raises(grpc.RpcError) as e:
        list(server.stub().Sweep(pb.SweepRequest(fasternet=pb.FasterNetSpace(n_div=list(range(1, 62)))),
                                 timeout=60))
    code, _, quotas = rich(e.value)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and quotas == ["max_sweep_size"]
    with pytest.raises(grpc.RpcError) as e:
        list(server.stub().Sweep(pb.SweepRequest(), timeout=60))
    assert rich(e.value)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, [("space", rich(e.value)[1][0][1])])


def test_cold_batch_in_analysis_processes(tmp_path: Path) -> None:
    """Cold batches go to the analysis processes, which store their rows before answering."""
    specs = [fasternet(d, (1, 1, 2, 1), n_div=n, mlp_ratio=m) for d in (16, 24, 32) for n in (2, 4)
             for m in (1.0, 2.0, 3.0)] + [efficientnet(1.0, 1.0, r) for r in (96, 128)]
    bad = spb.Candidate(network=spb.NetworkSpec(stages=[spb.Stage(blocks=[spb.Block(pool=spb.PoolSpec(
        kernel_size=31, padding=0))])], resolution=8))
    cands = [convert.candidate_to_proto(s) for s in specs] + [bad]
    req = pb.GetCostBatchRequest(candidates=cands, detail=pb.DETAIL_TOTALS)
    with ServerProcess(f"sqlite:///{tmp_path / 'c.sqlite'}", "--analyze-processes", "2", log_dir=tmp_path) as srv:
        first = srv.stub().GetCostBatch(req, timeout=300)
        rows = cache_rows(srv)
    with ServerProcess(f"sqlite:///{tmp_path / 'c.sqlite'}", "--analyze-processes", "0", log_dir=tmp_path) as srv:
        second = srv.stub().GetCostBatch(req, timeout=300)
    assert rows == len(specs)
    for spec, a, b in zip(specs, first.results, second.results, strict=False):
        assert not a.report.cache_hit and b.report.cache_hit
        want = {k: v for k, v in engine(spec).items() if k != "by_module"}
        assert figures(convert.report_to_dict(a.report)) == want == figures(convert.report_to_dict(b.report))
    err = convert.status_to_error(first.results[-1].error)
    assert err.code == "INVALID_ARGUMENT" and err.violations[0][0].startswith(f"candidates[{len(specs)}].network")


def test_long_cold_batch_is_pipelined_in_order(tmp_path: Path) -> None:
    """A batch longer than one part (128) with analysis processes: converted and handed over part by
    part, answered in request order, bad candidates in later parts with their own index, every row
    stored compact (no by_module/views) and a full report re-derived exactly on the next request."""
    import json
    import random

    from cost_engine.spec import ConvSpec, LinearSpec, MBConvSpec, NetworkSpec, PoolSpec

    rng = random.Random(3)
    specs: list[NetworkSpec] = []
    while len(specs) < 300:
        stages = tuple(tuple(MBConvSpec(out_channels=w, kernel_size=rng.choice((3, 5)), expand_ratio=rng.choice((3, 6)),
                                        stride=2 if i == 0 else 1) for i in range(rng.randint(1, 3)))
                       for w in (16, 24, 32))
        net = NetworkSpec(stem=(ConvSpec(out_channels=8, stride=2),), stages=stages,
                          head=(PoolSpec(mode="global_avg", flatten=True), LinearSpec(out_features=10)),
                          resolution=rng.choice((32, 64)))
        if net not in specs:
            specs.append(net)
    cands = [convert.candidate_to_proto(s) for s in specs]
    bad_at = (5, 140, 290)
    for i in bad_at:
        cands[i].network.stages[1].blocks[0].mbconv.kernel_size = 4
    req = pb.GetCostBatchRequest(candidates=cands, detail=pb.DETAIL_SCALARS)
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    with ServerProcess(url, "--analyze-processes", "2", log_dir=tmp_path) as srv:
        first = srv.stub().GetCostBatch(req, timeout=600)
        again = srv.stub().GetCostBatch(req, timeout=600)
        assert cache_rows(srv) == len(specs) - len(bad_at)
    for i, (spec, a, b) in enumerate(zip(specs, first.results, again.results, strict=True)):
        if i in bad_at:
            err = convert.status_to_error(a.error)
            assert err.code == "INVALID_ARGUMENT"
            assert list(err.violations) == [(f"candidates[{i}].network.stages[1].blocks[0].mbconv.kernel_size",
                                       err.violations[0][1])]
            continue
        got, hit = convert.report_to_dict(a.report), convert.report_to_dict(b.report)
        assert not got["cache_hit"] and hit["cache_hit"]
        want = analyze(spec).to_dict(breakdowns=False)
        assert {k: got[k] for k in want if k not in ("candidate", "by_op_type", "unknown_ops")} == \
            {k: v for k, v in want.items() if k not in ("candidate", "by_op_type", "unknown_ops")}
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        payloads = [json.loads(r[0]) for r in conn.execute("SELECT payload FROM cost_oracle_cache_v1")]
    assert all("by_module" not in d and "views" not in d and "by_op_type" in d for d in payloads)
    # a restarted server (cold memos) re-derives the breakdowns of a stored row exactly
    with ServerProcess(url, "--analyze-processes", "0", log_dir=tmp_path) as srv:
        full = srv.stub().GetCostBatch(pb.GetCostBatchRequest(candidates=cands[:3], detail=pb.DETAIL_FULL),
                                       timeout=600)
    for spec, r in zip(specs[:3], full.results, strict=True):
        d = convert.report_to_dict(r.report)
        assert d["cache_hit"] and figures(d) == engine(spec)


# -- info, stats, health, reflection ----------------------------------------------------------
def test_info_stats_health_reflection(server: ServerProcess) -> None:
    ch = server.channel()
    stub = server.stub()
    info = stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=60)
    assert info.limits.max_batch_size == MAX_BATCH and info.limits.max_message_bytes == MAX_MESSAGE
    assert info.cost_model_version and "cpu" in [d.name for d in info.devices] and info.cache_backend == "sqlite"
    assert {"mbconv", "fasternet", "network"} <= set(info.spec_kinds)
    stats = stub.GetCacheStats(pb.GetCacheStatsRequest(), timeout=60)
    assert stats.entries == cache_rows(server) and stats.backend == "sqlite"
    assert health_status(ch) == health_status(ch, "costoracle.v1.CostOracle") == \
        health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    req = [reflection_pb2.ServerReflectionRequest(list_services=""),
           reflection_pb2.ServerReflectionRequest(file_containing_symbol="costoracle.v1.CostOracle")]
    answers = list(refl.ServerReflectionInfo(iter(req), timeout=60))
    services = {s.name for s in answers[0].list_services_response.service}
    assert {"costoracle.v1.CostOracle", "grpc.health.v1.Health"} <= services
    assert answers[1].file_descriptor_response.file_descriptor_proto
    assert "grpc.reflection.v1.ServerReflection" in services
    # reflection v1 (what grpcurl asks first): the same messages under the renamed package
    v1 = ch.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                          request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                          response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    answers = list(v1(iter(req), timeout=60))
    assert {"costoracle.v1.CostOracle", "grpc.health.v1.Health"} <= {
        s.name for s in answers[0].list_services_response.service}
    assert answers[1].file_descriptor_response.file_descriptor_proto
    assert {"swish", "identity"} <= set(info.activation_aliases) and "silu" in info.activations


# -- auth and TLS -------------------------------------------------------------------------------
def _self_signed(d: Path) -> tuple[Path, Path]:
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def test_bearer_token_over_tls(tmp_path: Path) -> None:
    try:
        cert, key = _self_signed(tmp_path)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl unavailable: {exc}")
    with ServerProcess(f"sqlite:///{tmp_path / 'c.sqlite'}", "--token", "s3cret", "--tls-cert", str(cert),
                       "--tls-key", str(key), log_dir=tmp_path) as srv:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        ch = srv.channel(creds)
        from costoracle.v1 import oracle_pb2_grpc

        stub = oracle_pb2_grpc.CostOracleStub(ch)
        assert health_status(ch) == health_pb2.HealthCheckResponse.SERVING  # exempt
        req = pb.GetCostRequest(candidate=cand("resnet18"))
        for md in ((), (("authorization", "Bearer wrong"),), (("authorization", "s3cret"),)):
            with pytest.raises(grpc.RpcError) as e:
                stub.GetCost(req, metadata=md, timeout=60)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = stub.GetCost(req, metadata=(("authorization", "Bearer s3cret"),), timeout=60)
        assert ok.report.macs == analyze("resnet18").macs
        info = stub.GetServerInfo(pb.GetServerInfoRequest(), metadata=(("authorization", "Bearer s3cret"),),
                                  timeout=60)
        assert info.auth_required
        with grpc.insecure_channel(srv.address) as plain, pytest.raises(grpc.RpcError):
            health_status(plain)


# -- graceful shutdown ----------------------------------------------------------------------------
def test_sigterm_drains_in_flight_call(tmp_path: Path) -> None:
    srv = ServerProcess(f"sqlite:///{tmp_path / 'c.sqlite'}", "--grace", "120", log_dir=tmp_path).start()
    stub = srv.stub()
    stub.GetCost(pb.GetCostRequest(candidate=cand("resnet18")), timeout=60)  # warm
    # a cold batch of distinct networks that takes seconds to compute and render in full (several
    # times the 0.3 s before SIGTERM, even on a fast machine)
    n = 600
    cands = [convert.candidate_to_proto(efficientnet(1.0 + i / 1000, 1.0 + (i % 4) / 10, 160 + 4 * (i % 40)))
             for i in range(n)]
    result: dict = {}

    def call() -> None:
        try:
            result["resp"] = stub.GetCostBatch(pb.GetCostBatchRequest(candidates=cands, detail=pb.DETAIL_FULL),
                                               timeout=300)
        except grpc.RpcError as exc:  # pragma: no cover - the failure is reported below
            result["error"] = exc

    idle_cpu = srv.cpu_seconds()
    t = threading.Thread(target=call)
    t.start()
    # the batch takes seconds of the server's CPU: once it has used some, the call is in flight
    # (a fixed sleep raced the client's sending on a loaded machine: GOAWAY before the call arrived)
    end = time.monotonic() + 120
    while srv.cpu_seconds() - idle_cpu < 0.3 and time.monotonic() < end and t.is_alive():
        time.sleep(0.02)
    assert t.is_alive(), result
    srv.send(signal.SIGTERM)
    t.join(300)
    code = srv.wait(300)
    srv.stop()
    assert "error" not in result, result.get("error")
    resp = result["resp"]
    assert len(resp.results) == n and all(r.HasField("report") for r in resp.results)
    assert code == 0
    log = srv.log()
    assert '"event":"draining"' in log and '"method":"GetCostBatch","status":"OK"' in log
    assert log.index('"event":"draining"') < log.index('"method":"GetCostBatch"')
