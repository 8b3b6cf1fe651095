"""Project foundation: the two README commands, CI, packaging metadata, layer boundaries."""

from __future__ import annotations

import os
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
    assert meta["project"]["scripts"] == {"cost-oracle": "cost_oracle.client.cli:main"}


def test_cost_engine_imports_no_grpc_or_database() -> None:
    code = ("import sys, cost_engine, cost_engine.modules, cost_engine.trace;"
            "print(','.join(m for m in ('grpc', 'sqlalchemy', 'psycopg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def test_ruff_is_clean() -> None:
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "."], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def _folders_as_packages() -> list[str]:
    """What pyproject must list: every folder with an ``__init__.py``, under its installed name."""
    installed = {"client": "cost_oracle.client", "server": "cost_oracle.server", "contract": "cost_oracle.contract"}
    out = []
    for top in ("cost_engine", "costoracle", "cost_oracle", *installed):
        for init in sorted((ROOT / top).rglob("__init__.py")):
            parts = init.parent.relative_to(ROOT / top).parts
            out.append(".".join((installed.get(top, top), *parts)))
    return out


def test_pyproject_lists_every_package_under_its_installed_name() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setup = meta["tool"]["setuptools"]
    assert sorted(setup["packages"]) == sorted(_folders_as_packages())
    assert setup["package-dir"] == {"cost_oracle.client": "client", "cost_oracle.server": "server",
                                    "cost_oracle.contract": "contract"}


def test_the_wheel_owns_no_top_level_client_or_server_and_leaves_a_users_own_alone(tmp_path: Path) -> None:
    """Issue #12 item 19: installed, the oracle is ``cost_oracle.*`` (plus ``cost_engine`` and the
    stubs' ``costoracle``), so a project with its own ``client`` or ``server`` package keeps it."""
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(tmp_path / "wheel")], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "wheel").glob("*.whl"))
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"cost_engine", "costoracle", "cost_oracle"}
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    user = tmp_path / "project"
    for pkg in ("client", "server"):
        (user / pkg).mkdir(parents=True)
        (user / pkg / "__init__.py").write_text(f"OWNER = 'the user: {pkg}'\n")
    code = ("import client, server, cost_oracle.client as c, cost_oracle.server.oracle as o;"
            "from cost_oracle import RemoteOracle, Budget;"
            "print(client.OWNER, '|', server.OWNER, '|', c.__file__, '|',"
            "      o.Oracle(':memory:').info()['activations'][0], '|', RemoteOracle.__module__, Budget.__module__)")
    env = {**os.environ, "PYTHONPATH": f"{site}"}
    out = subprocess.run([sys.executable, "-c", code], cwd=user, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    owner_c, owner_s, where, act, modules = (s.strip() for s in out.stdout.split("|"))
    assert (owner_c, owner_s) == ("the user: client", "the user: server")
    assert where.startswith(str(site)) and act
    assert modules == "cost_oracle.client.remote cost_oracle.contract.budget"
