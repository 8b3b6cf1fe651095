"""The Node example (``examples/node``) against a real server: a non-Python client that has only
the ``.proto`` files of ``proto/`` (issue 12 item 8). Runs where node and npm are installed and the
npm registry is reachable; skipped, saying which was missing, elsewhere."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import cost_engine
from cost_oracle.server.app import start
from cost_oracle.server.config import ServerConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "node"


def test_the_proto_folder_is_self_contained() -> None:
    imports = []
    for f in (ROOT / "proto").rglob("*.proto"):
        imports += [line.split('"')[1] for line in f.read_text().splitlines() if line.startswith("import ")]
    missing = [i for i in imports if not (ROOT / "proto" / i).exists() and not i.startswith("google/protobuf/")]
    assert not missing, f"imported but not shipped in proto/: {missing}"
    oracle = (ROOT / "proto" / "costoracle" / "v1" / "oracle.proto").read_text()
    assert "option go_package" in oracle and "option java_package" in oracle


@pytest.mark.slow
def test_node_client_gets_the_engines_figures(tmp_path: Path) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not installed")
    work = tmp_path / "examples" / "node"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("node_modules"))
    (tmp_path / "proto").symlink_to(ROOT / "proto", target_is_directory=True)
    try:
        inst = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work,
                              capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("npm install timed out (registry unreachable?)")
    if inst.returncode != 0:
        pytest.skip(f"npm install failed (registry unreachable?): {inst.stderr[-300:]}")
    srv = start(ServerConfig(db_url=f"sqlite:///{tmp_path / 'c.sqlite'}", port=0))
    try:
        proc = subprocess.run([node, "client.js", f"127.0.0.1:{srv.port}", "efficientnet_b0"], cwd=work,
                              capture_output=True, text=True, timeout=120)
    finally:
        srv.stop(0)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    want = cost_engine.analyze("efficientnet_b0")
    assert int(out["macs"]) == want.macs and int(out["params"]) == want.params
    assert out["candidate"] == "efficientnet_b0" and len(out["cache_key"]) == 64
