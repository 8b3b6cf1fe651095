"""The ``cost-oracle`` command line, in-process (no server), run as a user runs it: a subprocess.

Every figure the CLI prints is checked against ``cost_engine.analyze`` called directly in this
process; every bad input must exit non-zero with the field named on stderr and no traceback.
Small models and low resolutions keep each run quick.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import cost_engine
from cost_engine.families.fasternet import fasternet
from cost_engine.spec import ConvSpec, LinearSpec, MBConvSpec, NetworkSpec, PoolSpec, to_dict
from cost_oracle.client.cli._common import UsageError
from cost_oracle.client.cli.spaces import parse_axis, parse_depths

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "reference_models.json"
ORACLE_KEYS = {"cache_hit", "cache_key", "cost_model_version"}


def cli_command() -> list[str]:
    """The installed console script when the venv has it (what users run), else ``python -m cost_oracle.client.cli``."""
    script = Path(sys.executable).with_name("cost-oracle")
    if script.exists():
        return [str(script)]
    found = shutil.which("cost-oracle")
    return [found] if found else [sys.executable, "-m", "cost_oracle.client.cli"]


def run_cli(*args: str, db: Path | None = None, stdin: str | None = None, timeout: float = 180,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("COST_ORACLE_")}
    if db is not None:
        e["COST_ORACLE_DB_URL"] = f"sqlite:///{db}"
    e.update(env or {})
    return subprocess.run([*cli_command(), *args], cwd=ROOT, env=e, input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def ok_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


def assert_clean_failure(proc: subprocess.CompletedProcess[str], *fragments: str, code: int | None = None) -> None:
    assert proc.returncode != 0, proc.stdout
    if code is not None:
        assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert proc.stderr.startswith("error: "), proc.stderr
    for f in fragments:
        assert f in proc.stderr, (f, proc.stderr)


def small_network() -> NetworkSpec:
    return NetworkSpec(stem=(ConvSpec(16, kernel_size=3, stride=2, act="silu"),),
                       stages=((MBConvSpec(16, expand_ratio=1), MBConvSpec(24, kernel_size=5, stride=2)),),
                       head=(PoolSpec("global_avg", flatten=True), LinearSpec(10)), resolution=64)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite"


# -- cost -----------------------------------------------------------------------------------
def test_cost_name_json_is_the_engine_report_plus_cache_fields_and_second_call_is_a_hit(db: Path) -> None:
    args = ("cost", "mobilenet_v2", "--resolution", "96", "--batch-size", "2", "--json")
    first = ok_json(run_cli(*args, db=db))
    want = cost_engine.analyze("mobilenet_v2", resolution=96, batch_size=2).to_dict()
    assert set(want) | ORACLE_KEYS <= set(first)
    for key, value in want.items():
        assert first[key] == value, key
    assert first["cache_hit"] is False
    assert len(first["cache_key"]) == 64 and int(first["cache_key"], 16) >= 0
    assert first["cost_model_version"] == cost_engine.COST_MODEL_VERSION

    second = ok_json(run_cli(*args, db=db))
    assert second["cache_hit"] is True
    assert second["cache_key"] == first["cache_key"]
    assert {k: v for k, v in second.items() if k != "cache_hit"} == {k: v for k, v in first.items() if k != "cache_hit"}


def test_cost_context_flags_change_the_figures_as_the_engine_does(db: Path) -> None:
    got = ok_json(run_cli("cost", "fasternet_t0", "--resolution", "64", "--dtype", "float16", "--json", db=db))
    want = cost_engine.analyze("fasternet_t0", resolution=64, dtype="float16").to_dict()
    for key in ("macs", "flops", "params", "memory_access_bytes", "peak_activation_bytes", "input_shape", "dtype"):
        assert got[key] == want[key], key
    assert got["memory_access_bytes"] == 2 * got["memory_access_elements"]


def test_cost_spec_file_network_and_standalone_block(db: Path, tmp_path: Path) -> None:
    net = small_network()
    (tmp_path / "net.json").write_text(json.dumps(to_dict(net)))
    got = ok_json(run_cli("cost", "--spec", str(tmp_path / "net.json"), "--json", db=db))
    want = cost_engine.analyze(net).to_dict()
    assert {k: got[k] for k in want} == want

    block = MBConvSpec(32, expand_ratio=4, kernel_size=5, stride=2)
    (tmp_path / "block.json").write_text(json.dumps(to_dict(block)))
    got = ok_json(run_cli("cost", "--spec", str(tmp_path / "block.json"), "--in-channels", "16", "--resolution", "32",
                          "--json", db=db))
    want = cost_engine.analyze(block, resolution=32, in_channels=16).to_dict()
    assert {k: got[k] for k in want} == want
    # the same block read from stdin, carrying its own in_channels
    got_stdin = ok_json(run_cli("cost", "--spec", "-", "--resolution", "32", "--json", db=db,
                                stdin=json.dumps({**to_dict(block), "in_channels": 16})))
    assert got_stdin["macs"] == want["macs"] and got_stdin["cache_hit"] is True


def test_cost_human_summary(db: Path) -> None:
    proc = run_cli("cost", "mobilenet_v2", "--resolution", "96", db=db)
    assert proc.returncode == 0, proc.stderr
    assert "macs" in proc.stdout and "mobilenet_v2" in proc.stdout


# -- errors ---------------------------------------------------------------------------------
def test_unknown_name_lists_the_known_names(db: Path) -> None:
    proc = run_cli("cost", "efficientnet_b9", "--json", db=db)
    assert_clean_failure(proc, "candidate.builtin", "efficientnet_b9", "efficientnet_b0", "fasternet_t0", code=2)
    assert proc.stdout == ""


def test_bad_spec_fields_are_each_named(db: Path, tmp_path: Path) -> None:
    bad = to_dict(small_network())
    bad["stages"][0][1]["kernel_size"] = 4
    bad["stages"][0][0]["out_channels"] = -1
    bad["stem"][0]["colour"] = "red"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    proc = run_cli("cost", "--spec", str(tmp_path / "bad.json"), "--json", db=db)
    assert_clean_failure(proc, "stages[0].blocks[1].mbconv.kernel_size", "stages[0].blocks[0].mbconv.out_channels",
                         "stem[0].conv.colour", code=2)


@pytest.mark.parametrize(("args", "fragments"), [
    (("cost", "mobilenet_v2", "--batch-size", "0"), ("context.batch_size",)),
    (("cost", "mobilenet_v2", "--dtype", "int8"), ("context.dtype", "int8")),
    (("cost", "mobilenet_v2", "--resolution", "99999"), ("context.resolution",)),
    (("cost", "--spec", "/nonexistent/spec.json"), ("--spec", "no such file")),
    (("cost",), ("name",)),
    (("sweep", "fasternet", "--n-div", "2..x"), ("--n-div", "not a number")),
    (("sweep", "fasternet", "--phi", "1"), ("--phi", "does not apply")),
    (("sweep", "efficientnet", "--phi", "0..1", "--width", "1.0"), ("cannot be combined",)),
    (("sweep", "fasternet", "--n-div", "0,4"), ("fasternet.n_div",)),
    (("filter", "/nonexistent.jsonl"), ("candidates", "no such file")),
    (("plot", "--input", "/nonexistent.json", "--out", "/tmp/x.png"), ("--input", "no such file")),
])
def test_bad_flags_fail_cleanly(db: Path, args: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    assert_clean_failure(run_cli(*args, db=db), *fragments)


def test_standalone_block_without_in_channels_or_resolution(db: Path, tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text(json.dumps(to_dict(ConvSpec(8))))
    assert_clean_failure(run_cli("cost", "--spec", str(tmp_path / "b.json"), db=db), "in_channels", code=2)
    assert_clean_failure(run_cli("cost", "--spec", str(tmp_path / "b.json"), "--in-channels", "3", db=db),
                         "context.resolution", code=2)
    (tmp_path / "j.json").write_text("{not json")
    assert_clean_failure(run_cli("cost", "--spec", str(tmp_path / "j.json"), db=db), "--spec", "invalid JSON", code=2)


# -- list, batch, filter ------------------------------------------------------------------------
def test_list_names_every_reference_model(db: Path) -> None:
    names = ok_json(run_cli("list", "--json", db=db))
    reference = {m["name"] for m in json.loads(REFERENCE.read_text())["models"]}
    assert reference and reference <= set(names)
    assert names == sorted(names)


def test_batch_results_in_order_and_one_bad_candidate_fails_alone(db: Path, tmp_path: Path) -> None:
    bad = to_dict(small_network())
    bad["stages"][0][0]["kernel_size"] = 2
    lines = ["mobilenet_v2", json.dumps({"name": "shufflenet_v2_x0_5"}), "no_such_model", json.dumps(bad),
             json.dumps(to_dict(small_network())), "# a comment", ""]
    (tmp_path / "c.jsonl").write_text("\n".join(lines))
    proc = run_cli("batch", str(tmp_path / "c.jsonl"), "--resolution", "64", db=db)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "candidates[2].builtin" in proc.stderr
    assert "candidates[3].network.stages[0].blocks[0].mbconv.kernel_size" in proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2, 3, 4]
    for i, cand in ((0, "mobilenet_v2"), (1, "shufflenet_v2_x0_5"), (4, small_network())):
        want = cost_engine.analyze(cand, resolution=64).to_dict()
        assert {k: rows[i][k] for k in ("macs", "flops", "params", "peak_activation_bytes")} == \
               {k: want[k] for k in ("macs", "flops", "params", "peak_activation_bytes")}
    assert rows[2]["error"]["code"] == "INVALID_ARGUMENT"
    assert rows[3]["error"]["violations"][0]["field"].endswith("mbconv.kernel_size")


def test_batch_json_list_csv(db: Path, tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps(["mobilenet_v2", "fasternet_t0"]))
    proc = run_cli("batch", str(tmp_path / "c.json"), "--format", "csv", "--resolution", "64", db=db)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["candidate"] for r in rows] == ["mobilenet_v2", "fasternet_t0"]
    assert int(rows[1]["macs"]) == cost_engine.analyze("fasternet_t0", resolution=64).macs


def test_filter_keeps_exactly_the_candidates_under_budget(db: Path, tmp_path: Path) -> None:
    names = ["mobilenet_v2", "fasternet_t0", "shufflenet_v2_x1_0", "resnet18", "efficientnet_b0", "regnet_x_400mf"]
    (tmp_path / "c.txt").write_text("\n".join(names))
    reports = {n: cost_engine.analyze(n, resolution=64) for n in names}
    max_macs = sorted(r.macs for r in reports.values())[3]  # a limit inside the range
    max_params = 6_000_000
    out = ok_json(run_cli("filter", str(tmp_path / "c.txt"), "--resolution", "64", "--max-macs", str(max_macs),
                          "--max-params", "6M", "--pareto", "macs,params", "--format", "json", db=db))
    want = [i for i, n in enumerate(names) if reports[n].macs <= max_macs and reports[n].params <= max_params]
    assert out["feasible"] == want
    for r in out["results"]:
        rep = reports[names[r["index"]]]
        c = {x["name"]: x for x in r["constraints"]}
        assert c["max_macs"]["value"] == rep.macs - max_macs  # Optuna convention: <= 0 is feasible
        assert c["max_params"]["value"] == rep.params - max_params
        assert r["feasible"] == (r["index"] in want)
        assert set(r["violated"]) == {k for k, x in c.items() if x["value"] > 0}
    # Pareto front of the feasible set over (macs, params), computed here by brute force
    pts = {i: (reports[names[i]].macs, reports[names[i]].params) for i in want}
    front = [i for i in want if not any(all(a <= b for a, b in zip(pts[j], pts[i], strict=True)) and pts[j] != pts[i]
                                        for j in want)]
    assert out["pareto_front"] == front
    assert {r["index"] for r in out["results"] if r["pareto"]} == set(front)


# -- sweep and plot -----------------------------------------------------------------------------
def test_sweep_fasternet_grid_matches_the_family_and_the_budget(db: Path) -> None:
    grid = [(n, m) for n in (2, 4, 8) for m in (1.0, 2.0)]
    macs = sorted(cost_engine.analyze(fasternet(40, (1, 2, 8, 2), n_div=n, mlp_ratio=m, act="gelu", resolution=64)).macs
                  for n, m in grid)
    limit = (macs[2] + macs[3]) // 2  # half the grid under budget
    out = ok_json(run_cli("sweep", "fasternet", "--n-div", "2,4,8", "--mlp-ratio", "1,2", "--act", "gelu",
                          "--resolution", "64", "--max-macs", str(limit), "--pareto", "macs,params",
                          "--format", "json", "--no-progress", db=db))
    assert out["total"] == 6 and len(out["points"]) == 6
    feasible = []
    for p in out["points"]:
        params = p["point"]
        spec = fasternet(40, (1, 2, 8, 2), n_div=int(params["n_div"]), mlp_ratio=params["mlp_ratio"], act="gelu",
                         resolution=64)
        rep = cost_engine.analyze(spec)
        assert p["report"]["macs"] == rep.macs and p["report"]["params"] == rep.params, p["label"]
        assert p["feasible"] == (rep.macs <= limit)
        if p["feasible"]:
            feasible.append(p["index"])
    assert out["feasible"] == feasible and len(feasible) == 3
    assert set(out["pareto_front"]) <= set(feasible) and out["pareto_front"]

    table = run_cli("sweep", "fasternet", "--n-div", "2,4", "--resolution", "64", "--no-progress", db=db)
    assert table.returncode == 0 and "n_div" in table.stdout and "2 points" in table.stdout
    rows = list(csv.DictReader(io.StringIO(run_cli("sweep", "fasternet", "--n-div", "2,4", "--resolution", "64",
                                                   "--format", "csv", db=db).stdout)))
    assert [int(r["n_div"]) for r in rows] == [2, 4] and all(r["feasible"] == "True" for r in rows)


def test_sweep_efficientnet_compound_grid_keeps_the_flops_constraint(db: Path) -> None:
    out = ok_json(run_cli("sweep", "efficientnet", "--phi", "0..1", "--alpha", "1.1..1.3:0.1",
                          "--beta", "1.05..1.15:0.05", "--gamma", "1.1..1.2:0.05", "--format", "json", "--progress",
                          db=db))
    triples = {(a, b, g) for a in (1.1, 1.2, 1.3) for b in (1.05, 1.1, 1.15) for g in (1.1, 1.15, 1.2)
               if abs(a * b * b * g * g - 2.0) <= 0.1}
    assert out["total"] == 2 * len(triples) > 0
    seen = {(p["point"]["alpha"], p["point"]["beta"], p["point"]["gamma"]) for p in out["points"]}
    assert {tuple(round(x, 6) for x in t) for t in seen} == {tuple(round(x, 6) for x in t) for t in triples}
    b0 = cost_engine.analyze("efficientnet_b0").macs
    assert all(p["report"]["macs"] == b0 for p in out["points"] if p["point"]["phi"] == 0)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_from_sweep_json_and_by_running_a_sweep(db: Path, tmp_path: Path) -> None:
    sweep = run_cli("sweep", "mobilenet_v2", "--width", "0.5..1.0:0.25", "--resolution", "96,128",
                    "--max-macs", "100M", "--format", "json", db=db)
    assert sweep.returncode == 0, sweep.stderr
    (tmp_path / "s.json").write_text(sweep.stdout)
    drawn = ok_json(run_cli("plot", "--input", str(tmp_path / "s.json"), "--x", "macs", "--y", "params",
                            "--out", str(tmp_path / "a.png"), "--json", db=db))
    assert drawn["points"] == 6 and 0 < drawn["feasible"] <= 6 and drawn["front"]
    w, h = _png_size(tmp_path / "a.png")
    assert w > 300 and h > 200
    import matplotlib.image

    img = matplotlib.image.imread(str(tmp_path / "a.png"))
    assert img.shape[:2] == (h, w) and float(img.std()) > 0.01  # something was drawn

    proc = run_cli("plot", "fasternet", "--n-div", "2,4", "--resolution", "64", "--x", "flops", "--y",
                   "memory_access", "--log", "--out", str(tmp_path / "b.png"), db=db)
    assert proc.returncode == 0, proc.stderr
    _png_size(tmp_path / "b.png")
    assert_clean_failure(run_cli("plot", "--input", str(tmp_path / "s.json"), "--x", "colour", "--out",
                                 str(tmp_path / "c.png"), db=db), "--x")


def test_info_and_cache_stats_in_process(db: Path) -> None:
    ok_json(run_cli("cost", "mobilenet_v2", "--resolution", "64", "--json", db=db))
    info = ok_json(run_cli("info", "--json", db=db))
    assert info["cost_model_version"] == cost_engine.COST_MODEL_VERSION
    assert "mbconv" in info["spec_kinds"] and "efficientnet_b0" in info["builtins"]
    assert any(d["name"] == "cpu" for d in info["devices"])
    stats = ok_json(run_cli("cache", "stats", "--json", db=db))
    assert stats["backend"] == "sqlite" and stats["entries"] >= 1 and stats["entries_by_kind"].get("cost", 0) >= 1


# -- grid syntax (pure functions) ---------------------------------------------------------------
def test_axis_syntax() -> None:
    assert parse_axis("0..3", int) == (0, 1, 2, 3)
    assert parse_axis("1.1..1.3:0.05") == (1.1, 1.15, 1.2, 1.25, 1.3)
    assert parse_axis("2,4,8", int) == (2, 4, 8)
    assert parse_axis("0.5..1.4:0.1")[-1] == 1.4 and len(parse_axis("0.5..1.4:0.1")) == 10
    assert parse_axis("1,1,2") == (1.0, 2.0)
    assert parse_depths("1-2-8-2,2-2-4-2") == ((1, 2, 8, 2), (2, 2, 4, 2))
    for bad in ("1..0", "1..2:0", "a", "1,,2"):
        with pytest.raises(UsageError):
            parse_axis(bad)
    with pytest.raises(UsageError):
        parse_axis("0..1:0.5", int)
