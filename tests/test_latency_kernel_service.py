"""The kernel latency model through the public surface (issue #11): the FitLatencyModel RPC with
its progress stream, the model as the default method once fitted, predictions that never
measure silently (``measured_for_prediction``, ``never_measure``), the clients and
``cost-oracle latency fit``. A simulated device (``FakeWorker``) stands in for the timing
processes, so the fits take seconds; the real device's figures are the benchmark's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cost_engine.families.sampled import sample_space
from cost_engine.latency import LatencySettings, MemoryCache
from cost_engine.latency.kernel_predict import fit_kernel_predictor
from cost_engine.latency.testing import FakeWorker
from cost_engine.spec import to_dict
from cost_oracle.client.cli import main as cli_main
from cost_oracle.client.cli.latency import space_candidates
from cost_oracle.client.errors import OracleError
from cost_oracle.client.inprocess import InProcessOracle
from cost_oracle.client.remote import RemoteOracle
from cost_oracle.contract import convert
from cost_oracle.server.app import start
from cost_oracle.server.config import ServerConfig
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc

pytest.importorskip("lightgbm")

SPACE = sample_space("ofa", 10, seed=1)
HELD_OUT = sample_space("ofa", 14, seed=2)[-3:]


def predict_ctx(method: int = pb.LATENCY_METHOD_UNSPECIFIED, **kw) -> pb.Context:
    return pb.Context(latency=pb.LATENCY_MODE_PREDICT, threads=1, latency_method=method, **kw)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    d = tmp_path_factory.mktemp("kernel_service")
    with FakeWorker(jitter=0.002) as fake:
        srv = start(ServerConfig(db_url=f"sqlite:///{d / 'c.sqlite'}", port=0))
        channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
        try:
            yield {"stub": oracle_pb2_grpc.CostOracleStub(channel), "fake": fake, "port": srv.port, "dir": d}
        finally:
            channel.close()
            srv.stop(0)


def fit_request(n_units: int = 120, **kw) -> pb.FitLatencyModelRequest:
    return pb.FitLatencyModelRequest(candidates=[convert.candidate_to_proto(c) for c in SPACE],
                                     context=pb.Context(threads=1), max_units=n_units, networks=5, **kw)


def test_before_a_fit_the_kernel_method_fails_naming_the_fix_and_default_is_the_block_table(served) -> None:
    stub = served["stub"]
    cand = convert.candidate_to_proto(HELD_OUT[0])
    with pytest.raises(grpc.RpcError) as err:
        stub.GetCost(pb.GetCostRequest(candidate=cand, context=predict_ctx(pb.LATENCY_METHOD_KERNEL)), timeout=60)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "cost-oracle latency fit" in err.value.details()
    # never_measure: the block table would have to time blocks first, so it refuses to
    with pytest.raises(grpc.RpcError) as err:
        stub.GetCost(pb.GetCostRequest(candidate=cand, context=predict_ctx(never_measure=True)), timeout=60)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "needs measurements first" in err.value.details()
    # allowed to measure, it measures and says so; asked again, it answers from the table
    first = stub.GetCost(pb.GetCostRequest(candidate=cand, context=predict_ctx()), timeout=120).report.latency
    assert first.method == "block_table" and first.source == pb.SOURCE_PREDICTED
    assert first.measured_for_prediction > 0
    again = stub.GetCost(pb.GetCostRequest(candidate=cand, context=predict_ctx(never_measure=True)),
                         timeout=60).report.latency
    assert again.method == "block_table" and again.measured_for_prediction == 0


def test_fit_streams_progress_then_becomes_the_default_method(served) -> None:
    stub, fake = served["stub"], served["fake"]
    msgs = list(stub.FitLatencyModel(fit_request(), timeout=300))
    phases = [m.phase for m in msgs]
    assert phases[-1] == "done" and msgs[-1].HasField("model")
    assert "networks" in phases and "units" in phases and phases.index("networks") < phases.index("units")
    units = [m for m in msgs if m.phase == "units"]
    assert [m.done for m in units] == sorted(m.done for m in units) and units[-1].done == units[-1].total == 120
    model = msgs[-1].model
    assert model.units == 120 and model.unit_measurements == 120 and model.networks == 5
    assert model.distinct_units_in_space > 120 and model.rounds and model.interval_90_rel > 0
    assert model.fingerprint["device"] == "cpu" and model.key and "*" in model.types
    assert sum(r.validation_units + r.resampled for r in model.rounds) == 120 - 72
    sessions = fake.sessions
    for spec in HELD_OUT:  # never-timed networks: predicted by the model, nothing measured
        lat = stub.GetCost(pb.GetCostRequest(candidate=convert.candidate_to_proto(spec),
                                             context=predict_ctx(never_measure=True)), timeout=60).report.latency
        truth = fake.latency_ms(to_dict(spec), [1, 3, spec.resolution, spec.resolution])
        assert lat.method == "kernel" and lat.source == pb.SOURCE_PREDICTED and lat.measured_for_prediction == 0
        assert lat.interval_level == 0.9 and lat.ci_low_ms < lat.median_ms < lat.ci_high_ms
        assert abs(lat.median_ms / truth - 1) < 0.10, (lat.median_ms, truth)
    assert fake.sessions == sessions
    # fitted again: the networks and the first sample are cached; only units its adaptive rounds
    # pick anew are timed (the picks follow the served milliseconds, which move with the anchor)
    again = list(stub.FitLatencyModel(fit_request(), timeout=300))[-1].model
    assert again.network_measurements == 0 and again.units == 120 and again.generation == model.generation + 1
    assert again.unit_measurements <= sum(r.resampled for r in again.rounds)
    # another context (batch 2) has no model: the default there is still the block table
    other = stub.GetCost(pb.GetCostRequest(candidate=convert.candidate_to_proto(HELD_OUT[0]),
                                           context=predict_ctx(batch_size=2)), timeout=120).report.latency
    assert other.method == "block_table"


@pytest.mark.parametrize(("change", "field"), [
    ({"max_units": -1}, "max_units"),
    ({"networks": 5000}, "networks"),
    ({"budget_minutes": -2.0}, "budget_minutes"),
    ({"adaptive": 1.5}, "adaptive"),
])
def test_bad_fit_requests_name_the_field(served, change: dict, field: str) -> None:
    req = fit_request()
    for k, v in change.items():
        setattr(req, k, v)
    with pytest.raises(grpc.RpcError) as err:
        list(served["stub"].FitLatencyModel(req, timeout=60))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in err.value.details()


def test_a_fit_needs_networks(served) -> None:
    stub = served["stub"]
    with pytest.raises(grpc.RpcError) as err:
        list(stub.FitLatencyModel(pb.FitLatencyModelRequest(context=pb.Context(threads=1)), timeout=60))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "candidates" in err.value.details()
    from cost_engine.spec import ConvSpec
    from cost_oracle.contract.types import BlockCandidate

    block = convert.candidate_to_proto(BlockCandidate(ConvSpec(out_channels=8), 8))
    with pytest.raises(grpc.RpcError) as err:
        list(stub.FitLatencyModel(pb.FitLatencyModelRequest(candidates=[block], context=pb.Context(threads=1)),
                                  timeout=60))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "candidates[0]" in err.value.details()


def test_remote_client_fits_with_progress(served) -> None:
    seen: list[tuple[str, int, int]] = []
    with RemoteOracle(f"127.0.0.1:{served['port']}") as oracle:
        model = oracle.fit_latency_model(SPACE, max_units=120, networks=5, threads=1,
                                         progress=lambda *a: seen.append(a))
        lat = oracle.cost(HELD_OUT[1], latency="predict", threads=1, never_measure=True).latency
    assert model["units"] == 120 and model["network_measurements"] == 0  # the gRPC test's fit is cached
    assert model["unit_measurements"] <= sum(r["resampled"] for r in model["rounds"])
    assert seen and {p for p, _, _ in seen} <= {"queued", "networks", "units"}
    assert lat is not None and lat.method == "kernel" and lat.interval is not None
    low, high, level = lat.interval
    assert low < lat.median_ms < high and level == 0.9
    with RemoteOracle(f"127.0.0.1:{served['port']}") as oracle, pytest.raises(OracleError) as err:
        oracle.fit_latency_model([], threads=1)
    assert err.value.code.value == "INVALID_ARGUMENT"


def test_in_process_client_and_cli_fit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = f"sqlite:///{tmp_path / 'c.sqlite'}"
    with FakeWorker(jitter=0.002) as fake:
        rc = cli_main(["latency", "fit", "--space", "ofa:6,resnet:4", "--max-units", "80", "--networks", "4",
                       "--threads", "1", "--db-url", db, "--json", "--no-progress"])
        out = capsys.readouterr().out
        assert rc == 0, out
        model = json.loads(out)
        assert model["units"] == 80 and model["networks"] == 4 and model["unit_measurements"] == 80
        sessions = fake.sessions
        rc = cli_main(["cost", "resnet18", "--latency-mode", "predict", "--threads", "1", "--never-measure",
                       "--db-url", db, "--json"])
        report = json.loads(capsys.readouterr().out)
        assert rc == 0 and report["latency"]["method"] == "kernel" and fake.sessions == sessions
        rc = cli_main(["cost", "resnet18", "--latency-mode", "predict", "--threads", "1", "--db-url", db])
        text = capsys.readouterr().out
        assert rc == 0 and "latency predicted" in text and "method kernel; 90% interval" in text
        # the text summary names what the fit used
        rc = cli_main(["latency", "fit", "--space", "ofa:6,resnet:4", "--max-units", "80", "--networks", "4",
                       "--threads", "1", "--db-url", db, "--no-progress"])
        text = capsys.readouterr()
        assert rc == 0 and "timed units" in text.out and "4 (0 new this fit)" in text.out
        with InProcessOracle(db) as oracle:
            steps: list[tuple] = []
            again = oracle.fit_latency_model(space_candidates("ofa:6,resnet:4"), max_units=80, networks=4,
                                             threads=1, progress=lambda *a: steps.append(a))
        assert again["network_measurements"] == 0 and steps
        assert again["unit_measurements"] <= sum(r["resampled"] for r in again["rounds"])
    rc = cli_main(["latency", "fit", "--space", "ofa:x", "--db-url", db])
    err = capsys.readouterr().err
    assert rc == 2 and "--space" in err and "integer" in err
    rc = cli_main(["latency", "fit", "--space", "vgg:3,ofa:2", "--db-url", db])
    assert rc == 2 and "unknown space" in capsys.readouterr().err


def test_space_flag_interleaves_spaces_and_names_builtins() -> None:
    mixed = space_candidates("ofa:3,resnet:2")
    assert len(mixed) == 5
    ofa, resnet = [to_dict(s) for s in sample_space("ofa", 3, 0)], [to_dict(s) for s in sample_space("resnet", 2, 1)]
    assert mixed == [ofa[0], resnet[0], ofa[1], resnet[1], ofa[2]]
    assert space_candidates("ofa:3") == [to_dict(s) for s in sample_space("ofa", 3, 0)]
    names = space_candidates("builtins")
    assert "efficientnet_b0" in names and "resnet50" in names


def test_a_time_budget_stops_the_fit_after_a_chunk() -> None:
    cache = MemoryCache()
    with FakeWorker(jitter=0.002):
        model = fit_kernel_predictor(SPACE, LatencySettings(threads=1), cache=cache, max_units=200, networks=3,
                                     budget_s=1e-3, unit_sessions=1, network_sessions=1)
    assert model.stats["stopped_by_budget"] and model.stats["units"] == 50  # one chunk, then the budget


def test_the_cli_ticks_while_a_latency_call_runs(capsys: pytest.CaptureFixture) -> None:
    import time

    from cost_oracle.client.cli._common import Ticker

    with Ticker("measuring latency on cpu", enabled=True, every_s=0.05):
        time.sleep(0.3)
    err = capsys.readouterr().err
    assert "measuring latency on cpu ..." in err and err.rstrip().endswith("s")
    with Ticker("quiet", enabled=False, every_s=0.05):
        time.sleep(0.1)
    assert capsys.readouterr().err == ""
