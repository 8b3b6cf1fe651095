"""``examples/ofa_search.py`` runs end to end (issue 15), with a small budget: NSGA-II over the OFA
space with the oracle as the budget, a PNG and a CSV of the front, and the summary of how the
oracle answered."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_ofa_search_example_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COST_ORACLE_")}
    # a latency limit no candidate of this space comes near at 1 thread: decided by prediction, and
    # the MACs limit rejects about half of the proposals before anything is "trained"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "ofa_search.py"), "--trials", "6", "--batch", "6",
                           "--max-macs", "40e6", "--max-latency-ms", "2000", "--db-url",
                           f"sqlite:///{tmp_path / 'c.sqlite'}", "--out", str(tmp_path / "front")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert "6 within budget and evaluated" in lines[0] and "rejected by the budget before training" in lines[0]
    assert "analytically" in lines[1] and "by latency prediction" in lines[1]
    rows = list(csv.DictReader((tmp_path / "front.csv").read_text().splitlines()))
    assert len(rows) == 6 and all(int(r["macs"]) <= 40e6 for r in rows)
    assert any(r["on_front"] == "True" for r in rows) and all(float(r["latency_ms"]) > 0 for r in rows)
    assert (tmp_path / "front.png").stat().st_size > 1000
