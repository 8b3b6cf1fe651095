"""Docker files, checked without a Docker engine: the image's entrypoint command starts the
oracle as written, and the health-check command tells a serving oracle from none."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def dockerfile() -> dict[str, object]:
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    env: dict[str, str] = {}
    out: dict[str, object] = {"env": env}
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("ENV "):
            for part in shlex.split(line[4:]):
                key, _, value = part.partition("=")
                env[key] = value
        elif line.startswith("ENTRYPOINT "):
            out["entrypoint"] = json.loads(line[len("ENTRYPOINT "):])
        elif line.startswith("HEALTHCHECK "):
            out["healthcheck"] = json.loads(line.split(" CMD ", 1)[1])
    return out


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_compose_services_profiles_and_volumes() -> None:
    c = compose()
    oracle = c["services"]["oracle"]
    assert "oracle-cache:/data" in oracle["volumes"] and "oracle-cache" in c["volumes"]
    assert oracle["environment"]["COST_ORACLE_DB_URL"].startswith("sqlite:////data/")
    assert oracle["healthcheck"]["test"][1:] == dockerfile()["healthcheck"]
    pg_oracle = c["services"]["oracle-pg"]
    assert pg_oracle["profiles"] == ["postgres"] and c["services"]["postgres"]["profiles"] == ["postgres"]
    assert pg_oracle["environment"]["COST_ORACLE_DB_URL"].startswith("postgresql+psycopg://")
    assert pg_oracle["depends_on"]["postgres"]["condition"] == "service_healthy"
    text = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r"#\s+- driver: nvidia", text) and "capabilities: [gpu]" in text  # GPU reservation, commented


def test_compose_fleet_profile_runs_a_fleet_server_and_a_cpu_worker_whose_command_parses() -> None:
    c = compose()["services"]
    fleet = {name: s for name, s in c.items() if "fleet" in s.get("profiles", [])}
    assert set(fleet) == {"postgres-fleet", "oracle-fleet", "worker-cpu"}
    url = fleet["oracle-fleet"]["environment"]["COST_ORACLE_DB_URL"]
    assert url.startswith("postgresql+psycopg://") and fleet["worker-cpu"]["environment"]["COST_ORACLE_DB_URL"] == url
    assert fleet["oracle-fleet"]["environment"]["COST_ORACLE_MEASURE_ON"] == "fleet"
    for name in ("oracle-fleet", "worker-cpu"):
        assert fleet[name]["depends_on"]["postgres-fleet"]["condition"] == "service_healthy"
    # the worker's command is a real CLI invocation: the parser accepts it as written
    from cost_oracle.client.cli import build_parser

    entry = fleet["worker-cpu"]["entrypoint"]
    assert entry[:2] == ["cost-oracle", "worker"]
    args = build_parser().parse_args(entry[1:])
    assert args.device == "cpu" and args.threads == 2
    # and the server's environment is a valid fleet configuration
    from cost_oracle.server.config import ServerConfig

    cfg = ServerConfig.from_env(fleet["oracle-fleet"]["environment"])
    assert cfg.measure_on == "fleet" and cfg.errors() == []
    text = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r"#\s+entrypoint: \[\"cost-oracle\", \"worker\", \"--device\", \"cuda:0\"\]", text)


def test_image_installs_cpu_torch_pin_and_binds_all_interfaces() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'pip install "torch==2.13.0"' in text
    d = dockerfile()
    assert d["entrypoint"] == ["cost-oracle", "serve"]
    assert d["env"]["COST_ORACLE_HOST"] == "0.0.0.0"


@pytest.fixture
def entrypoint_server(tmp_path: Path):
    """The image's ENTRYPOINT with the image's ENV, on loopback and a temp cache."""
    d = dockerfile()
    port = free_port()
    env = dict(os.environ)
    env.update(d["env"])  # type: ignore[arg-type]
    env.update(COST_ORACLE_HOST="127.0.0.1", COST_ORACLE_PORT=str(port),
               COST_ORACLE_DB_URL=f"sqlite:///{tmp_path / 'cache.sqlite'}")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    proc = subprocess.Popen(d["entrypoint"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,  # type: ignore[arg-type]
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:  # type: ignore[union-attr]
            if "listening on" in line:
                break
            assert time.monotonic() < deadline, "server did not start"
        else:
            pytest.fail(f"entrypoint exited with {proc.wait()}")
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def healthcheck(port: int) -> subprocess.CompletedProcess:
    cmd = [c.replace("50051", str(port)) for c in dockerfile()["healthcheck"]]  # type: ignore[union-attr]
    if cmd[0] == "python":
        cmd[0] = sys.executable
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_entrypoint_serves_and_healthcheck_passes(entrypoint_server: tuple[int, subprocess.Popen]) -> None:
    port, proc = entrypoint_server
    result = healthcheck(port)
    assert result.returncode == 0, result.stderr
    # the health probe goes NOT_SERVING -> non-zero once the server is told to stop
    proc.terminate()
    proc.wait(timeout=30)
    assert healthcheck(port).returncode != 0


def test_healthcheck_fails_without_a_server() -> None:
    result = healthcheck(free_port())
    assert result.returncode != 0
    assert "NOT SERVING" in result.stderr
