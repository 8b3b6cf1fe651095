"""The README's examples run as tests, so the README cannot drift from what the tools do.

Every fenced block is extracted: ``python`` blocks run in a fresh interpreter (the one address a
snippet names, ``127.0.0.1:50051``, pointed at a server started here); ``bash`` lines that call
the CLI run in order in one scratch directory (a later line may read a file an earlier one wrote),
each must exit 0; benchmark lines are checked for their ``--help`` (a full benchmark is minutes);
the set-up lines (install, serve, the test suite itself) are what CI runs anyway; ``json`` blocks
are checked by ``test_first_hour.py`` against the schema.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import in_process_server
from test_cli import ROOT, cli_command

README = ROOT / "README.md"
SETUP = ("scripts/serve.sh", "scripts/test.sh", "scripts/install.sh", "COST_ORACLE_TORCH=", "docker",
         "cd examples/node")  # the last: run against a server by tests/test_examples_node.py


def fenced(lang: str) -> list[tuple[int, str]]:
    """(line number, body) of every fenced block in ``lang``."""
    out = []
    lines = README.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == f"```{lang}":
            start = i + 1
            j = start
            while lines[j].strip() != "```":
                j += 1
            out.append((start + 1, "\n".join(lines[start:j])))
            i = j
        i += 1
    return out


def shell_lines() -> list[tuple[int, str]]:
    out = []
    for lineno, body in fenced("bash"):
        for k, line in enumerate(body.splitlines()):
            line = re.split(r"\s{2,}#", line)[0].strip()  # drop the trailing explanation
            if line and not line.startswith("#"):
                out.append((lineno + k, line))
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with in_process_server(tmp_path_factory.mktemp("readme") / "c.sqlite") as srv:
        yield f"127.0.0.1:{srv.port}"


def env_for(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COST_ORACLE_")}
    env["COST_ORACLE_DB_URL"] = f"sqlite:///{tmp / 'readme.sqlite'}"
    return env


def test_the_readme_has_examples_of_each_kind() -> None:
    assert len(fenced("python")) >= 2 and len(shell_lines()) >= 8 and len(fenced("json")) >= 2


@pytest.mark.parametrize("lineno, code", fenced("python"), ids=lambda v: str(v) if isinstance(v, int) else "")
def test_python_snippet_runs(lineno: int, code: str, server: str, tmp_path: Path) -> None:
    code = code.replace("127.0.0.1:50051", server)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env_for(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"README.md line {lineno}:\n{proc.stderr[-3000:]}"


def test_shell_lines_run_in_order(tmp_path: Path) -> None:
    cli = " ".join(shlex.quote(c) for c in cli_command())
    ran = 0
    for lineno, line in shell_lines():
        if line.startswith(SETUP):
            continue
        if ".venv/bin/python benchmarks/" in line:
            script = line.split()[1]
            proc = subprocess.run([sys.executable, str(ROOT / script), "--help"], cwd=ROOT, capture_output=True,
                                  text=True, timeout=120)
            assert proc.returncode == 0, f"README.md line {lineno}: {script} --help\n{proc.stderr[-2000:]}"
            continue
        assert line.startswith(".venv/bin/cost-oracle"), f"README.md line {lineno}: unexpected command {line!r}"
        command = line.replace(".venv/bin/cost-oracle", cli, 1)
        proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env_for(tmp_path), capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, f"README.md line {lineno}: {line}\n{proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr
        ran += 1
    assert ran >= 5
