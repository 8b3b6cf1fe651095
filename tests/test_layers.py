"""The layers of the code, held by the import graph (issue #16): no import cycle anywhere, no
import that climbs a layer, and a remote client that loads neither the server's database layer
nor torch.

Layers, bottom up: ``cost_engine`` (specs, formulas, analysis, latency) and ``costoracle`` (the
generated stubs); ``contract`` (the service's plain types, errors and message conversion); then
``server`` and ``client``, side by side. The client reaches the server only in its in-process
mode, in ``serve``, in ``worker`` (a fleet worker runs the server's measuring side) and in
``cache prune`` (which works on a local database by design).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: repository folder -> the import name it is installed under (pyproject's package-dir)
PACKAGES = {"cost_engine": "cost_engine", "costoracle": "costoracle", "contract": "cost_oracle.contract",
            "server": "cost_oracle.server", "client": "cost_oracle.client"}
LAYER = {"cost_engine": 0, "costoracle": 0, "contract": 1, "server": 2, "client": 2}
#: client modules allowed to import the server: they run it in this process
CLIENT_RUNS_SERVER = {"cost_oracle.client.inprocess", "cost_oracle.client.cli.serve", "cost_oracle.client.cli.cache",
                      "cost_oracle.client.cli.worker"}


def modules() -> dict[str, Path]:
    out = {}
    for folder, import_name in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            out[".".join((import_name, *parts)).removesuffix(".__init__")] = path
    return out


def package_of(module: str) -> str:
    """The layer a module belongs to: its repository folder."""
    return module.removeprefix("cost_oracle.").split(".")[0]


MODULES = modules()


def imports_of(path: Path, top_level_only: bool) -> set[str]:
    """Project modules ``path`` imports (``from pkg import submodule`` counts as the submodule)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES]
            out.update(subs)
            if len(subs) < len(node.names):
                out.add(node.module)
    return {m for m in out if m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


@pytest.mark.parametrize("top_level_only", [True, False], ids=["module-level", "including-function-level"])
def test_no_import_cycles(top_level_only: bool) -> None:
    graph = {m: imports_of(p, top_level_only) - {m} for m, p in MODULES.items()}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_climbs_a_layer() -> None:
    upward = []
    for name, path in MODULES.items():
        pkg = package_of(name)
        for target in imports_of(path, top_level_only=False):
            tpkg = package_of(target)
            if tpkg == pkg:
                continue
            allowed = LAYER[tpkg] < LAYER[pkg] or (pkg == "client" and tpkg == "server" and name in CLIENT_RUNS_SERVER)
            if not allowed:
                upward.append(f"{name} -> {target}")
    assert upward == []


def test_the_contract_imports_only_protobuf_stubs_and_engine_data() -> None:
    """The contract stands on protobuf, the stubs and the engine's data modules (specs, keys, the
    context check); the sweep spaces call the families to generate points, on the server only."""
    allowed = ("cost_oracle.contract", "costoracle", "cost_engine.spec", "cost_engine.keys", "cost_engine.context",
               "cost_engine.families")
    bad = [f"{name} -> {t}" for name, path in MODULES.items() if name.startswith("cost_oracle.contract")
           for t in imports_of(path, top_level_only=False) if not t.startswith(allowed)]
    assert bad == []


def test_server_core_never_imports_the_generated_messages() -> None:
    """Only the servicer and the app that serves it speak protobuf; the oracle core (the analysis
    processes included: the servicer hands them its encoder and decoder) works on plain data."""
    speaks_proto = {f"cost_oracle.server.{m}" for m in ("servicer", "app")}
    bad = [f"{name} -> {t}" for name, path in MODULES.items()
           if name.startswith("cost_oracle.server") and name not in speaks_proto
           for t in imports_of(path, top_level_only=False)
           if t.startswith("costoracle") or t in ("cost_oracle.contract.convert", "cost_oracle.contract.wire")]
    assert bad == []


REMOTE_CLIENT = r"""
import json, sys
from cost_oracle.client import Budget, RemoteOracle
from cost_engine.spec import ConvSpec, NetworkSpec, PoolSpec, LinearSpec
net = NetworkSpec(stem=(ConvSpec(8, stride=2),), stages=((ConvSpec(16),),),
                  head=(PoolSpec(mode="global_avg", flatten=True), LinearSpec(10)), resolution=32)
with RemoteOracle(sys.argv[1]) as o:
    r = o.cost(net)
    many = o.cost_many([net, "mobilenet_v2"], detail="scalars")
    f = o.filter([net, "mobilenet_v2"], Budget(max_macs=10**9), pareto=["macs", "params"])
    info = o.info()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "torch", "psycopg")
                or m.startswith("cost_oracle.server"))
print(json.dumps({"macs": r.macs, "n": len(many), "feasible": f.feasible, "loaded": loaded}))
"""


def test_a_remote_client_process_loads_neither_sqlalchemy_nor_torch(tmp_path: Path) -> None:
    from cost_oracle.server.app import start
    from cost_oracle.server.config import ServerConfig

    srv = start(ServerConfig(db_url=f"sqlite:///{tmp_path / 'c.sqlite'}", port=0))
    try:
        out = subprocess.run([sys.executable, "-c", REMOTE_CLIENT, f"127.0.0.1:{srv.port}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    finally:
        srv.stop(0)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["macs"] > 0 and got["n"] == 2 and got["feasible"] == [0, 1]
    assert got["loaded"] == []


def test_one_activation_vocabulary() -> None:
    """The spec's ``act`` values are the formula registry's activation op kinds (plus "none"), and
    every layer that needs one has it: the module builder, the tracer's aten map, the layout and
    fusion rules, and what GetServerInfo lists."""
    from cost_engine.expand.emitter import LAYOUT_PRESERVING
    from cost_engine.formulas import ACTIVATION_FLOPS
    from cost_engine.modules.registry import ACT_MODULES
    from cost_engine.spec.base import ACTIVATION_ALIASES, ACTIVATIONS
    from cost_engine.summary import _FUSABLE_ACTS
    from cost_engine.trace.canonical import HANDLERS  # noqa: F401 - the aten map is built at import
    from cost_oracle.server.oracle import Oracle

    acts = set(ACTIVATIONS) - {"none"}
    assert acts == set(ACTIVATION_FLOPS) == set(ACT_MODULES) - {"none"} == set(_FUSABLE_ACTS)
    assert acts <= LAYOUT_PRESERVING
    assert set(ACTIVATION_ALIASES.values()) <= set(ACTIVATIONS)
    info = Oracle(":memory:").info()
    assert info["activations"] == list(ACTIVATIONS) and info["activation_aliases"] == ACTIVATION_ALIASES


def test_hardsigmoid_is_an_activation_everywhere() -> None:
    from cost_engine import analyze
    from cost_engine.modules import build
    from cost_engine.spec import ConvSpec, LinearSpec, NetworkSpec, PoolSpec
    from cost_engine.trace import analyze_module

    net = NetworkSpec(stem=(ConvSpec(8, stride=2, act="hardsigmoid"),), stages=(),
                      head=(PoolSpec(mode="global_avg", flatten=True), LinearSpec(10)), resolution=32)
    report = analyze(net)
    assert "hardsigmoid" in report.by_op_type()
    traced = analyze_module(build(net), (1, 3, 32, 32))
    assert traced.flops == report.flops and traced.params == report.params
