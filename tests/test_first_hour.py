"""What a newcomer meets in the first hour (issue 12), through the public surfaces: the Python API,
the CLI (a subprocess, as a user runs it) and gRPC."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import jsonschema
import pytest
from servers import stub_of
from test_cli import ROOT, assert_clean_failure, ok_json, run_cli

import cost_engine
from cost_engine.families import BUILTINS, resolve
from cost_engine.spec import ConvSpec, MBConvSpec, SpecError, from_dict, to_dict
from cost_engine.spec.schema import json_schema
from cost_oracle.client import InProcessOracle, InvalidArgument
from cost_oracle.contract import convert
from cost_oracle.contract.types import BlockCandidate
from cost_oracle.server.app import start
from cost_oracle.server.config import ServerConfig
from costoracle.v1 import oracle_pb2 as pb
from costoracle.v1 import oracle_pb2_grpc


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[oracle_pb2_grpc.CostOracleStub]:
    with stub_of(tmp_path_factory.mktemp("fh") / "c.sqlite") as s:
        yield s


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite"


# -- 1. analyze validates, as every other entry point does ----------------------------------------
@pytest.mark.parametrize("block, field", [(MBConvSpec(24, kernel_size=4), "kernel_size"),
                                          (ConvSpec(32, act="relux"), "act")])
def test_analyze_refuses_what_the_server_refuses_with_the_same_field(tmp_path: Path, block, field: str) -> None:
    with pytest.raises(SpecError) as err:
        cost_engine.analyze(block, resolution=32, in_channels=16)
    assert [e.path for e in err.value.errors] == [field]
    with InProcessOracle(f"sqlite:///{tmp_path / 'c.sqlite'}") as oracle, pytest.raises(InvalidArgument) as remote:
        oracle.cost(block, resolution=32, in_channels=16)
    assert any(v.field.endswith(field) for v in remote.value.violations)


# -- 2. activation aliases, accepted everywhere and listed by GetServerInfo ----------------------------
def test_activation_aliases_are_one_cache_key_on_every_surface(stub, db: Path, tmp_path: Path) -> None:
    silu = cost_engine.analyze(ConvSpec(32, act="silu"), resolution=32, in_channels=3).to_dict()
    assert cost_engine.analyze(ConvSpec(32, act="swish"), resolution=32, in_channels=3).to_dict() == silu
    assert from_dict({"kind": "conv", "out_channels": 8, "act": "identity"}).act == "none"
    keys = []
    for act in ("silu", "swish"):
        cand = convert.candidate_to_proto(BlockCandidate(ConvSpec(32, act=act), 3))
        keys.append(stub.GetCost(pb.GetCostRequest(candidate=cand, context=pb.Context(resolution=32)),
                                 timeout=30).report.cache_key)
    assert keys[0] == keys[1]
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"spec": {"kind": "conv", "out_channels": 32, "act": "swish"}, "in_channels": 3}))
    out = ok_json(run_cli("cost", "--spec", str(spec), "--resolution", "32", "--json", "--detail", "scalars", db=db))
    assert out["cache_key"] == keys[0]
    info = stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=30)
    assert dict(info.activation_aliases) == {"swish": "silu", "identity": "none"} and "hardswish" in info.activations


# -- 3 and 5. sweeps: duplicates collapse by cache key; the RPC has the CLI's compound defaults ---------
COMPOUND = ("--phi", "0..3", "--alpha", "1.1..1.3:0.05", "--beta", "1.05..1.2:0.05", "--gamma", "1.1..1.2:0.05",
            "--max-macs", "2G")


def test_a_sweep_front_never_lists_one_network_twice(db: Path) -> None:
    out = ok_json(run_cli("sweep", "efficientnet", *COMPOUND, "--pareto", "macs,params", "--format", "json", db=db))
    points = {p["index"]: p for p in out["points"]}
    dups = [p for p in points.values() if p.get("duplicate_of") is not None]
    assert dups and out["distinct"] == out["total"] - len(dups)
    front = out["pareto_front"]
    assert front and not any(points[i].get("duplicate_of") is not None for i in front)
    keys = [points[i]["report"]["cache_key"] if "cache_key" in points[i].get("report", {}) else None for i in front]
    assert len(set(json.dumps(points[i]["point"]) for i in front)) == len(front)
    assert None in keys or len(set(keys)) == len(keys)
    table = run_cli("sweep", "efficientnet", *COMPOUND, "--pareto", "macs,params", db=db)
    assert table.returncode == 0 and f"{out['distinct']} distinct networks" in table.stdout


def test_the_sweep_rpc_defaults_its_compound_bases_like_the_cli(stub) -> None:
    msgs = list(stub.Sweep(pb.SweepRequest(efficientnet_compound=pb.EfficientNetCompoundSpace(phi=[0, 1])),
                           timeout=120))
    points = [p for m in msgs for p in m.points]
    assert msgs[-1].done and msgs[-1].total == 2 and msgs[-1].distinct == 2
    assert {round(p.params["alpha"], 6) for p in points} == {1.2}
    assert {round(p.params["beta"], 6) for p in points} == {1.1}


# -- 4. a Pareto column without --pareto says it was not computed ---------------------------------------
def test_without_pareto_the_front_is_not_computed_not_empty(db: Path) -> None:
    names = "mobilenet_v2\nshufflenet_v2_x0_5\n"
    proc = run_cli("filter", "-", "--max-macs", "1G", db=db, stdin=names)
    assert proc.returncode == 0, proc.stderr
    assert "Pareto front not computed" in proc.stdout and "Pareto front []" not in proc.stdout
    assert " no " not in proc.stdout.splitlines()[2]  # the pareto column says "-", not "no"
    proc = run_cli("filter", "-", "--max-macs", "1G", "--pareto", "macs,params", db=db, stdin=names)
    assert "Pareto front over macs,params: [" in proc.stdout


# -- 6. the spec format: schema, built-in specs that round-trip, proto-JSON, a missing kind ---------------
def readme_json_examples() -> list[dict]:
    text = (ROOT / "README.md").read_text()
    blocks = text.split("```json\n")[1:]
    return [json.loads(b.split("```", 1)[0]) for b in blocks]


def test_the_schema_accepts_every_builtin_and_the_readme_examples_and_refuses_bad_ones(db: Path) -> None:
    proc = run_cli("schema", db=db)
    schema = ok_json(proc)
    assert schema == json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    for name in sorted(BUILTINS):
        assert not list(validator.iter_errors(to_dict(resolve(name)))), name
    examples = readme_json_examples()
    assert len(examples) >= 2
    for ex in examples:
        spec = ex.get("spec", ex)
        assert not list(validator.iter_errors(spec)), ex
        from_dict(spec)  # and the engine reads it
    assert list(validator.iter_errors({"kind": "mbconv", "out_channels": 0}))
    assert list(validator.iter_errors({"kind": "conv", "out_channels": 8, "act": "relux"}))
    assert list(validator.iter_errors({"out_channels": 8}))


def test_spec_name_round_trips_to_the_same_cache_key(db: Path, tmp_path: Path) -> None:
    proc = run_cli("spec", "fasternet_t0", db=db)
    assert proc.returncode == 0, proc.stderr
    f = tmp_path / "t0.json"
    f.write_text(proc.stdout)
    by_file = ok_json(run_cli("cost", "--spec", str(f), "--json", "--detail", "scalars", db=db))
    by_name = ok_json(run_cli("cost", "fasternet_t0", "--json", "--detail", "scalars", db=db))
    assert by_file["cache_key"] == by_name["cache_key"] and by_name["cache_hit"] is True
    assert_clean_failure(run_cli("spec", "fasternet_t9", db=db), "name", "fasternet_t0")


def test_proto_json_candidates_are_read_and_a_missing_kind_is_named(db: Path, tmp_path: Path) -> None:
    net = {"kind": "network", "resolution": 64, "stem": [{"kind": "conv", "out_channels": 16, "stride": 2}],
           "stages": [[{"kind": "mbconv", "out_channels": 24, "kernel_size": 5}]],
           "head": [{"kind": "pool", "mode": "global_avg", "flatten": True}, {"kind": "linear", "out_features": 10}]}
    proto_json = {"network": {"resolution": 64, "stem": [{"conv": {"outChannels": 16, "stride": 2}}],
                              "stages": [{"blocks": [{"mbconv": {"outChannels": 24, "kernelSize": 5}}]}],
                              "head": [{"pool": {"mode": "global_avg", "flatten": True}},
                                       {"linear": {"outFeatures": 10}}]}}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(net))
    b.write_text(json.dumps(proto_json))
    ra = ok_json(run_cli("cost", "--spec", str(a), "--json", "--detail", "scalars", db=db))
    rb = ok_json(run_cli("cost", "--spec", str(b), "--json", "--detail", "scalars", db=db))
    assert ra["cache_key"] == rb["cache_key"] and ra["macs"] == rb["macs"] > 0
    no_kind = tmp_path / "c.json"
    no_kind.write_text(json.dumps({k: v for k, v in net.items() if k != "kind"}))
    assert_clean_failure(run_cli("cost", "--spec", str(no_kind), db=db), "kind", "is missing", '"kind": "network"')


# -- 10. a missing optional dependency names its extra ----------------------------------------------------
def test_plot_without_matplotlib_names_the_extra(db: Path, tmp_path: Path) -> None:
    fake = tmp_path / "site"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    proc = run_cli("plot", "fasternet", "--n-div", "2,4", "--out", str(tmp_path / "p.png"), db=db,
                   env={"PYTHONPATH": str(fake)})
    assert_clean_failure(proc, "matplotlib", "'plot' extra")
    assert not (tmp_path / "p.png").exists()


# -- 17. JSON output with sorted keys (in-process and --server print the same bytes) -------------------------
def test_cli_json_keys_are_sorted(db: Path) -> None:
    proc = run_cli("cost", "mobilenet_v2", "--resolution", "96", "--json", "--detail", "scalars", db=db)
    keys = list(json.loads(proc.stdout))
    assert keys == sorted(keys)


# -- 11. one API: the same public methods on the sync, asyncio and in-process clients -------------------
def test_the_three_clients_have_the_same_methods(tmp_path: Path) -> None:
    import asyncio
    import inspect

    from cost_oracle.client import AsyncRemoteOracle, RemoteOracle

    def public(cls: type) -> set[str]:
        return {n for n, v in vars(cls).items() if not n.startswith("_") and callable(v)} | {
            n for c in cls.__mro__[1:-1] for n, v in vars(c).items() if not n.startswith("_") and callable(v)}

    sync, aio, local = public(RemoteOracle), public(AsyncRemoteOracle), public(InProcessOracle)
    assert sync == aio == local, (sync ^ aio, sync ^ local)
    for name in sync - {"close"}:
        fn = getattr(AsyncRemoteOracle, name)
        assert inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn), name

    srv = start(ServerConfig(db_url=f"sqlite:///{tmp_path / 'c.sqlite'}", port=0))
    try:
        async def ask() -> tuple[bool, list]:
            async with AsyncRemoteOracle(f"127.0.0.1:{srv.port}") as oracle:
                return await oracle.health(), [(i, r.macs) async for i, r in oracle.iter_cost(
                    ["mobilenet_v2", "resnet18"], resolution=64, detail="scalars")]

        healthy, pairs = asyncio.run(ask())
    finally:
        srv.stop(0)
    with InProcessOracle(f"sqlite:///{tmp_path / 'c.sqlite'}") as oracle:
        assert oracle.health()
        local_pairs = [(i, r.macs) for i, r in oracle.iter_cost(["mobilenet_v2", "resnet18"], resolution=64,
                                                                 detail="scalars")]
    assert healthy and pairs == local_pairs and [i for i, _ in pairs] == [0, 1]


# -- 14. cache stats say what they count; rows can be pruned by kind, version and age ----------------------
def test_cache_stats_explain_and_prune_deletes_what_it_names(db: Path) -> None:
    for name in ("mobilenet_v2", "resnet18"):
        ok_json(run_cli("cost", name, "--resolution", "64", "--json", "--detail", "scalars", db=db))
    stats = run_cli("cache", "stats", db=db)
    assert "what it counts" in stats.stdout and "lookups that reached the store" in stats.stdout
    assert_clean_failure(run_cli("cache", "prune", db=db), "prune", "--kind")
    assert_clean_failure(run_cli("cache", "prune", "--older-than", "-1", db=db), "--older-than")
    dry = run_cli("cache", "prune", "--kind", "cost", "--dry-run", db=db)
    assert dry.returncode == 0 and "would delete 2 row(s)" in dry.stdout
    assert "deleted 0 row(s)" in run_cli("cache", "prune", "--older-than", "1", db=db).stdout  # written just now
    assert "deleted 0 row(s)" in run_cli("cache", "prune", "--version", "no-such-version", db=db).stdout
    assert "deleted 2 row(s); 0 in the cache now" in run_cli("cache", "prune", "--kind", "cost", db=db).stdout
    again = ok_json(run_cli("cost", "resnet18", "--resolution", "64", "--json", "--detail", "scalars", db=db))
    assert again["cache_hit"] is False  # it was really gone


# -- 13. a compound sweep shows the multipliers and resolution it produces; coordinates are "point" ----------
def test_compound_sweep_points_carry_the_derived_figures(db: Path) -> None:
    out = ok_json(run_cli("sweep", "efficientnet", "--phi", "0,1,2", "--format", "json", db=db))
    for p in out["points"]:
        pt = p["point"]
        assert "params" not in p or isinstance(p.get("params"), int)  # never the coordinates
        assert pt["width"] == pytest.approx(pt["beta"] ** pt["phi"])
        assert pt["depth"] == pytest.approx(pt["alpha"] ** pt["phi"])
        assert pt["resolution"] == round(224 * pt["gamma"] ** pt["phi"])
        assert p["report"]["input_shape"][-1] == pt["resolution"]
    csv_out = run_cli("sweep", "efficientnet", "--phi", "0,1", "--format", "csv", db=db)
    header = csv_out.stdout.splitlines()[0].split(",")
    assert {"phi", "width", "depth", "resolution"} <= set(header)


# -- 12. one path style per surface -------------------------------------------------------------------------
def test_an_error_names_its_field_in_one_style(stub, db: Path, tmp_path: Path) -> None:
    from google.rpc import error_details_pb2

    from cost_engine.spec import NetworkSpec

    net = NetworkSpec(stem=(ConvSpec(8),), stages=((MBConvSpec(24, expand_ratio=0.5),),), head=())
    good = convert.candidate_to_proto("mobilenet_v2")
    resp = stub.GetCostBatch(pb.GetCostBatchRequest(candidates=[good, convert.candidate_to_proto(net)],
                                                    context=pb.Context(resolution=32)), timeout=60)
    err = resp.results[1].error
    bad = error_details_pb2.BadRequest()
    assert err.details[0].Unpack(bad)
    fields = [v.field for v in bad.field_violations]
    assert fields == ["candidates[1].network.stages[0].blocks[0].mbconv.expand_ratio"]
    assert fields[0] in err.message and "stages[0][0]" not in err.message
    with pytest.raises(grpc.RpcError) as unary:
        stub.GetCost(pb.GetCostRequest(candidate=convert.candidate_to_proto(net), context=pb.Context(resolution=32)),
                     timeout=60)
    assert "candidate.network.stages[0].blocks[0].mbconv.expand_ratio" in unary.value.details()
    # the CLI tells a standalone block to use its flag, not a Python class
    blk = tmp_path / "b.json"
    blk.write_text(json.dumps({"kind": "mbconv", "out_channels": 24}))
    proc = run_cli("cost", "--spec", str(blk), "--resolution", "32", db=db)
    assert_clean_failure(proc, "--in-channels")
    assert "BlockCandidate" not in proc.stderr


# -- 18. the plot: readable ticks, the budget in the title, every point findable in a CSV beside it ----------
def test_plot_writes_a_csv_of_its_points_and_names_the_budget(db: Path, tmp_path: Path) -> None:
    import csv

    from cost_oracle.client.plot import si

    assert (si(2.5e9), si(340e6), si(12_000), si(7)) == ("2.5G", "340M", "12k", "7")
    sweep = tmp_path / "s.json"
    proc = run_cli("sweep", "efficientnet", *COMPOUND, "--pareto", "macs,params", "--format", "json", db=db)
    sweep.write_text(proc.stdout)
    out = tmp_path / "front.png"
    drawn = ok_json(run_cli("plot", "--input", str(sweep), "--x", "macs", "--y", "params", "--out", str(out),
                            "--labels", "--json", db=db))
    assert out.stat().st_size > 1000 and "budget max_macs 2G" in drawn["title"]
    rows = list(csv.DictReader(Path(drawn["csv"]).read_text().splitlines()))
    assert len(rows) == drawn["points"] and {r["index"] for r in rows} == {str(p["index"]) for p in
                                                                         json.loads(sweep.read_text())["points"]}
    on_front = [r for r in rows if r["pareto_front"] == "True"]
    assert len(on_front) == len(drawn["front"]) and all(r["duplicate_of"] == "" for r in on_front)


# -- 15. progress bars: a runtime dependency, on filter too, shown when asked or on a terminal ----------------
def test_filter_shows_a_progress_bar_when_asked_and_none_when_piped(db: Path) -> None:
    import importlib.metadata

    requires = importlib.metadata.requires("nas-cost-oracle") or []
    assert any(r.startswith("tqdm") and "extra" not in r for r in requires)  # a runtime dependency
    names = "mobilenet_v2\nshufflenet_v2_x0_5\nresnet18\n"
    shown = run_cli("filter", "-", "--max-macs", "1G", "--progress", db=db, stdin=names)
    assert shown.returncode == 0 and "filter: costing" in shown.stderr and "3/3" in shown.stderr
    piped = run_cli("filter", "-", "--max-macs", "1G", db=db, stdin=names)
    assert piped.returncode == 0 and piped.stderr == "" and piped.stdout == shown.stdout
