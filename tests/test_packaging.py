"""Project foundation: the two README commands, CI, packaging metadata, layer boundaries."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_layout() -> None:
    for path in ("pyproject.toml", "proto", "server", "client", "cost_engine", "tests", "benchmarks",
                 "docker-compose.yml", "Dockerfile", "README.md", ".ci/run"):
        assert (ROOT / path).exists(), path


def test_readme_gives_two_setup_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Set-up: two commands.*?```bash\n(.*?)```", readme, re.S)
    assert block, "README lacks the set-up block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["scripts/serve.sh", "scripts/test.sh"]
    ci = (ROOT / ".ci/run").read_text()
    assert "exec scripts/test.sh" in ci
    test_sh = (ROOT / "scripts/test.sh").read_text()
    assert "scripts/install.sh --dev" in test_sh and "pytest" in test_sh


def test_install_pins_cpu_torch_and_project_range_admits_it() -> None:
    install = (ROOT / "scripts/install.sh").read_text()
    assert "torch==2.13.0" in install
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = meta["project"]["dependencies"]
    torch_req = next(d for d in deps if d.startswith("torch"))
    from packaging.specifiers import SpecifierSet

    assert "2.13.0" in SpecifierSet(torch_req[len("torch"):])
    for name in ("grpcio", "protobuf", "sqlalchemy"):
        assert any(d.lower().startswith(name) for d in deps), name
    dev = " ".join(meta["project"]["optional-dependencies"]["dev"])
    for name in ("pytest", "ruff", "hypothesis", "fvcore", "ptflops", "thop"):
        assert name in dev, name
    assert meta["project"]["scripts"] == {"cost-oracle": "client.cli:main"}


def test_cost_engine_imports_no_grpc_or_database() -> None:
    code = ("import sys, cost_engine, cost_engine.modules, cost_engine.trace;"
            "print(','.join(m for m in ('grpc', 'sqlalchemy', 'psycopg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def test_ruff_is_clean() -> None:
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "."], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
