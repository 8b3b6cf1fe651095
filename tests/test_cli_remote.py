"""The client against a real server: ``cost-oracle serve`` as a subprocess on a free port, asked by
the CLI (``--server``), the sync client and the asyncio client, and compared with the in-process
oracle on the same cache file (same keys, same figures, and one side's answer is the other's hit).
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cli import ROOT, assert_clean_failure, cli_command, ok_json, run_cli, small_network

import cost_engine
from cost_engine.spec import to_dict
from cost_oracle.client import (
    AsyncRemoteOracle,
    Budget,
    CostResult,
    FasterNetSpace,
    InProcessOracle,
    InvalidArgument,
    ItemError,
    RemoteOracle,
    Unauthenticated,
)

TOKEN = "test-token-7f3a"
START_TIMEOUT_S = 120.0


class Server:
    """``cost-oracle serve --port 0`` with its address read from the ``listening on`` line, healthy before use."""

    def __init__(self, db: Path, *args: str, tls: bytes | None = None):
        self.db = db
        self.args = args
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""
        self.log = db.with_suffix(f".{time.monotonic_ns()}.log")

    def start(self) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COST_ORACLE_")}
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [*cli_command(), "serve", "--host", "127.0.0.1", "--port", "0", "--db-url", f"sqlite:///{self.db}",
               "--workers", "8", *self.args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log)
        self.address = self._address()
        with RemoteOracle(self.address, tls=self.tls or False) as probe:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not probe.health(timeout=2.0):
                assert time.monotonic() < deadline, "server never became healthy"
                time.sleep(0.1)
        return self

    def _address(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT_S
        buf = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            if sel.select(timeout=0.2):
                buf += os.read(self.proc.stdout.fileno(), 4096)
                if b"\n" in buf:
                    line = buf.split(b"\n", 1)[0].decode()
                    assert line.startswith("cost-oracle listening on "), line
                    return line.rsplit(" ", 1)[-1]
        raise TimeoutError(self.log.read_text()[-2000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("remote") / "cache.sqlite", "--token", TOKEN).start()
    yield s
    s.stop()


def remote(server: Server, *args: str, **kw: Any) -> Any:
    return run_cli(*args, "--server", server.address, env={"COST_ORACLE_TOKEN": TOKEN}, **kw)


def without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_cost_remote_has_the_in_process_keys_and_shares_the_cache(server: Server) -> None:
    first = ok_json(remote(server, "cost", "shufflenet_v2_x0_5", "--resolution", "96", "--json"))
    want = cost_engine.analyze("shufflenet_v2_x0_5", resolution=96).to_dict()
    assert {k: first[k] for k in want} == want
    assert first["cache_hit"] is False and len(first["cache_key"]) == 64
    second = ok_json(remote(server, "cost", "shufflenet_v2_x0_5", "--resolution", "96", "--json"))
    assert second["cache_hit"] is True and without(second, "cache_hit") == without(first, "cache_hit")
    # the in-process CLI on the server's cache file: same keys, same figures, a hit
    local = ok_json(run_cli("cost", "shufflenet_v2_x0_5", "--resolution", "96", "--json", db=server.db))
    assert local == second


def test_cli_remote_errors_name_the_field_and_the_server_keeps_serving(server: Server, tmp_path: Path) -> None:
    bad = to_dict(small_network())
    bad["stages"][0][1]["kernel_size"] = 4
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert_clean_failure(remote(server, "cost", "--spec", str(tmp_path / "bad.json"), "--json"),
                         "candidate.network.stages[0].blocks[1].mbconv.kernel_size", code=2)
    assert_clean_failure(remote(server, "cost", "resnet9000"), "candidate.builtin", "resnet18", code=2)
    assert_clean_failure(remote(server, "cost", "mobilenet_v2", "--batch-size", "-1"), "context.batch_size", code=2)
    # no token: refused, not a traceback
    assert_clean_failure(run_cli("cost", "mobilenet_v2", "--server", server.address), "unauthenticated", code=1)
    assert ok_json(remote(server, "cost", "mobilenet_v2", "--resolution", "64", "--json"))["macs"] == \
        cost_engine.analyze("mobilenet_v2", resolution=64).macs


def test_cli_batch_filter_sweep_info_remote_equal_in_process(server: Server, tmp_path: Path) -> None:
    cands = ["mobilenet_v2", "nope", json.dumps(to_dict(small_network())), "fasternet_t0"]
    (tmp_path / "c.jsonl").write_text("\n".join(cands))
    common = ("--resolution", "64")
    r_batch = remote(server, "batch", str(tmp_path / "c.jsonl"), *common, "--format", "json")
    l_batch = run_cli("batch", str(tmp_path / "c.jsonl"), *common, "--format", "json", db=server.db)
    assert r_batch.returncode == l_batch.returncode == 1 and "candidates[1].builtin" in r_batch.stderr
    rb, lb = json.loads(r_batch.stdout), json.loads(l_batch.stdout)
    assert [without(x, "cache_hit") for x in rb] == [without(x, "cache_hit") for x in lb]

    limit = cost_engine.analyze("fasternet_t0", resolution=64).macs
    args = ("filter", str(tmp_path / "c.jsonl"), *common, "--max-macs", str(limit), "--pareto", "macs,params",
            "--format", "json")
    rf, lf = json.loads(remote(server, *args).stdout), json.loads(run_cli(*args, db=server.db).stdout)
    for r in rf["results"] + lf["results"]:
        r.get("report", {}).pop("cache_hit", None)
    assert rf == lf and rf["feasible"] and 1 not in rf["feasible"]

    args = ("sweep", "fasternet", "--n-div", "2,4", "--mlp-ratio", "1,2", "--resolution", "64", "--max-params",
            "4M", "--pareto", "macs,params", "--format", "json")
    rs = ok_json(remote(server, *args, "--progress"))
    ls = ok_json(run_cli(*args, db=server.db))
    for p in rs["points"] + ls["points"]:
        p["report"].pop("cache_hit")
    assert rs == ls and rs["total"] == 4

    info = ok_json(remote(server, "info", "--json"))
    assert info["cost_model_version"] == cost_engine.COST_MODEL_VERSION and info["auth_required"] is True
    assert set(info) == set(ok_json(run_cli("info", "--json", db=server.db)))
    assert ok_json(remote(server, "list", "--json")) == ok_json(run_cli("list", "--json"))
    stats = ok_json(remote(server, "cache", "stats", "--json"))
    assert stats["entries"] >= 1 and stats["hits"] >= 1
    assert set(stats) == set(ok_json(run_cli("cache", "stats", "--json", db=server.db)))


# -- Python clients -----------------------------------------------------------------------------
def test_sync_client_equals_in_process(server: Server) -> None:
    with RemoteOracle(server.address, token=TOKEN) as r, InProcessOracle(f"sqlite:///{server.db}") as local:
        a = r.cost(small_network(), batch_size=4, dtype="float16")
        b = local.cost(small_network(), batch_size=4, dtype="float16")
        assert b.cache_hit and a.to_dict() == {**b.to_dict(), "cache_hit": a.cache_hit}
        many = r.cost_many(["mobilenet_v2", "nope", small_network()], resolution=64)
        assert [type(x) for x in many] == [CostResult, ItemError, CostResult]
        assert many[1].violations[0].field == "candidates[1].builtin"
        streamed = r.cost_many(["mobilenet_v2", small_network()] * 5, resolution=64, chunk_size=3)
        assert [x.macs for x in streamed] == [many[0].macs, many[2].macs] * 5
        budget = Budget(max_macs=many[2].macs)
        rf = r.filter(["mobilenet_v2", small_network(), "nope"], budget, pareto="macs,params", resolution=64)
        lf = local.filter(["mobilenet_v2", small_network(), "nope"], budget, pareto="macs,params", resolution=64)
        assert rf == lf and rf.feasible == (1,) and rf.results[2].error is not None
        space = FasterNetSpace(n_div=(2, 4, 8), resolution=(64,))
        rs = r.sweep(space, Budget(max_params=3_500_000), pareto=["macs"], include_reports=True, chunk_size=1)
        ls = local.sweep(space, Budget(max_params=3_500_000), pareto=["macs"], include_reports=True)
        strip = [(p.index, p.params, p.label, p.result.feasible, p.result.pareto, p.result.report.macs)
                 for p in rs.points]
        assert strip == [(p.index, p.params, p.label, p.result.feasible, p.result.pareto, p.result.report.macs)
                         for p in ls.points]
        assert (rs.total, rs.feasible, rs.pareto_front) == (ls.total, ls.feasible, ls.pareto_front)
        with pytest.raises(InvalidArgument) as info:
            r.cost({"kind": "network", "stages": [[{"kind": "fasternet", "n_div": 0}]]})
        assert info.value.violations[0].field == "candidate.network.stages[0].blocks[0].fasternet.n_div"
        assert r.info().cost_model_version == cost_engine.COST_MODEL_VERSION
    with RemoteOracle(server.address) as anonymous, pytest.raises(Unauthenticated):
        anonymous.cost("mobilenet_v2")


def test_async_client_many_queries_in_flight(server: Server) -> None:
    names = ["mobilenet_v2", "fasternet_t0", "shufflenet_v2_x0_5", "resnet18"]
    want = {n: cost_engine.analyze(n, resolution=64).macs for n in names}

    async def main() -> list[Any]:
        async with AsyncRemoteOracle(server.address, token=TOKEN) as oracle:
            singles = await asyncio.gather(*(oracle.cost(n, resolution=64, detail="scalars") for n in names * 10))
            batch = await oracle.cost_many(names, resolution=64, progress=lambda d, t: None)
            out = await oracle.filter(names, Budget(max_macs=want["fasternet_t0"]), resolution=64)
            sweep = await oracle.sweep(FasterNetSpace(n_div=(4,), resolution=(64,)), include_reports=True)
            try:
                await oracle.cost("nope")
            except InvalidArgument as exc:
                err = exc
            return [singles, batch, out, sweep, err, await oracle.cache_stats()]

    singles, batch, out, sweep, err, stats = asyncio.run(main())
    assert [s.macs for s in singles] == [want[n] for n in names * 10]
    assert [b.macs for b in batch] == [want[n] for n in names]
    assert list(out.feasible) == [i for i, n in enumerate(names) if want[n] <= want["fasternet_t0"]]
    assert sweep.total == 1 and sweep.points[0].result.report is not None
    assert err.violations[0].field == "candidate.builtin"
    assert stats["hits"] >= 30


def test_threads_hammering_one_server(server: Server) -> None:
    names = ["mobilenet_v2", "fasternet_t0", "shufflenet_v2_x0_5"]
    want = {n: cost_engine.analyze(n, resolution=64).macs for n in names}
    failures: list[str] = []

    def work(k: int) -> None:
        with RemoteOracle(server.address, token=TOKEN) as oracle:
            for i in range(25):
                n = names[(i + k) % len(names)]
                got = oracle.cost(n, resolution=64, detail="scalars").macs
                if got != want[n]:
                    failures.append(f"{n}: {got} != {want[n]}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures


def test_a_restarted_server_on_the_same_cache_still_hits(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite"
    s = Server(db).start()
    try:
        with RemoteOracle(s.address) as oracle:
            first = oracle.cost("regnet_x_400mf", resolution=64)
    finally:
        s.stop()
    assert first.cache_hit is False and s.proc is not None and s.proc.returncode == 0
    s = Server(db).start()
    try:
        with RemoteOracle(s.address) as oracle:
            again = oracle.cost("regnet_x_400mf", resolution=64)
    finally:
        s.stop()
    assert again.cache_hit is True and again.to_dict() == {**first.to_dict(), "cache_hit": True}


def test_tls_with_a_private_root_certificate(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl unavailable: {exc}")
    s = Server(tmp_path / "cache.sqlite", "--tls-cert", str(cert), "--tls-key", str(key),
               tls=cert.read_bytes()).start()
    try:
        got = ok_json(run_cli("cost", "resnet18", "--resolution", "64", "--json", "--server", s.address,
                              "--tls-ca", str(cert)))
        assert got["macs"] == cost_engine.analyze("resnet18", resolution=64).macs
        with RemoteOracle(s.address, tls=str(cert)) as oracle:
            assert oracle.cost("resnet18", resolution=64).cache_hit is True
        # plaintext to a TLS server: a clean failure, no traceback
        assert_clean_failure(run_cli("cost", "resnet18", "--server", s.address, "--timeout", "5"), code=1)
    finally:
        s.stop()


# -- latency (real timing: slow) ------------------------------------------------------------------
@pytest.mark.slow
def test_latency_measured_in_process_is_served_remotely_without_retiming(server: Server, tmp_path: Path) -> None:
    from cost_engine.spec import ConvSpec

    (tmp_path / "conv.json").write_text(json.dumps(to_dict(ConvSpec(8, stride=2))))
    args = ("cost", "--spec", str(tmp_path / "conv.json"), "--in-channels", "3", "--resolution", "16", "--latency",
            "--device", "cpu", "--json")
    # a 2 us conv differs between fresh processes by more than the noisy bound, and a noisy
    # result is re-measured when asked again (tests/test_latency_paired.py); this test is of
    # the cache shared by the in-process and the remote CLI, so the local run lifts the bound
    local = ok_json(run_cli(*args, db=server.db, timeout=900, env={"COST_ORACLE_NOISY_REL_CI": "inf"}))
    lat = local["latency"]
    assert lat["noisy"] is False and lat["method"] == "paired"
    assert {"median_ms", "p10_ms", "p90_ms", "cv", "runs", "source"} <= set(lat)
    assert lat["source"] == "measured" and lat["runs"] > 0 and lat["cached"] is False
    assert 0 < lat["p10_ms"] <= lat["median_ms"] <= lat["p90_ms"]
    assert local["macs"] == cost_engine.analyze(ConvSpec(8, stride=2), resolution=16, in_channels=3).macs
    again = ok_json(remote(server, *args, timeout=900))
    assert again["latency"]["cached"] is True and again["latency"]["median_ms"] == lat["median_ms"]
    assert set(again) == set(local)

    cal = ok_json(run_cli("calibrate", "--json", db=server.db, timeout=900))
    assert cal["device"] == "cpu" and cal["peak_flops"] > 1e8 and cal["bandwidth_bytes_per_s"] > 1e8
    cal_remote = ok_json(remote(server, "calibrate", "--json", timeout=900))
    assert cal_remote["cached"] is True and cal_remote["peak_flops"] == cal["peak_flops"]
    assert set(cal_remote) == set(cal)
    assert_clean_failure(remote(server, "cost", "mobilenet_v2", "--latency", "--device", "cuda:7"), "device")
