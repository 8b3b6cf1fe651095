"""A hardware-aware search end to end: Optuna NSGA-II over an OFA-like MBConv space under a MACs
and latency budget on this machine's CPU, with the oracle as the budget.

* **Space**: 4 stages (24/40/80/112 channels), depth 2-4, kernel 3/5/7, expansion 3/4/6, 128 px.
* **Budget**: ``--max-macs`` and ``--max-latency-ms`` (1 CPU thread). Every candidate the sampler
  proposes goes to the oracle first; an infeasible one is told to the study as PRUNED and never
  "trained". Latency is decided by prediction and measured only when too close to call.
* **Accuracy proxy** (no training data, no weights to download): **synflow** (Tanaka et al.,
  NeurIPS 2020; used as a zero-cost NAS proxy by Abdelfattah et al., ICLR 2021) — the sum of
  |theta * dR/dtheta| with all weights made positive and an all-ones input, on random weights.
  It is a ranking signal, not an accuracy; say so wherever it is shown.
* **Objectives**: maximize log synflow, minimize latency (ms).
* **Output**: a progress bar, the Pareto front as a PNG and a CSV (``--out`` prefix), and how
  the oracle answered: from its cache, decided analytically, by prediction, by measurement.

    python examples/ofa_search.py --trials 60 --out /tmp/ofa   # 30 trials took 107 s here (60 proposed)
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WIDTHS = (24, 40, 80, 112)


def ofa(trial: Any, resolution: int = 128, classes: int = 100) -> Any:
    """An OFA-like MBConv network from a trial's suggestions (depth 2-4, kernel 3/5/7, expand 3/4/6)."""
    from cost_engine.spec import ConvSpec, LinearSpec, MBConvSpec, NetworkSpec, PoolSpec

    stages = []
    for s, w in enumerate(WIDTHS):
        depth = trial.suggest_int(f"depth{s}", 2, 4)
        stages.append(tuple(MBConvSpec(w, kernel_size=trial.suggest_categorical(f"k{s}_{i}", [3, 5, 7]),
                                       expand_ratio=trial.suggest_categorical(f"e{s}_{i}", [3.0, 4.0, 6.0]),
                                       stride=2 if i == 0 else 1) for i in range(depth)))
    return NetworkSpec(stem=(ConvSpec(16, stride=2),), stages=tuple(stages),
                       head=(PoolSpec("global_avg", flatten=True), LinearSpec(classes)), resolution=resolution)


def synflow(spec: Any) -> float:
    """log of the synflow score of ``spec`` on random weights (a zero-cost proxy, not accuracy)."""
    import torch

    from cost_engine.modules import build

    torch.manual_seed(0)
    shape = (1, 3, spec.resolution, spec.resolution)
    model = build(spec, input_shape=shape).double().eval()  # eval: BN uses its running statistics
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad()
    model(torch.ones(shape, dtype=torch.float64)).sum().backward()
    with torch.no_grad():
        score = sum(float((p * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None)
    return math.log(score) if score > 0 else float("-inf")


def main(argv: list[str] | None = None) -> int:
    import optuna
    from tqdm import tqdm

    from cost_oracle.client import Budget, InProcessOracle, RemoteOracle
    from cost_oracle.client.optuna_search import CACHE_HIT, DECIDED_BY, OracleBudget

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=60, help="feasible candidates to evaluate")
    ap.add_argument("--max-macs", type=float, default=60e6)
    ap.add_argument("--max-latency-ms", type=float, default=12.0, help="on this CPU, 1 thread")
    ap.add_argument("--server", help="ask a running oracle (default: in-process, the default cache)")
    ap.add_argument("--db-url", help="in-process cache database (default: the oracle's)")
    ap.add_argument("--out", default="ofa_search", help="prefix of the PNG and CSV written")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=20, help="candidates asked and checked per oracle call")
    ap.add_argument("--latency-method", default="roofline", choices=("roofline", "block_table", "flops"),
                    help="how survivors' latency is predicted (measured only when too close to call)")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    t0 = time.time()
    budget = Budget(max_macs=int(args.max_macs), max_latency_ms=args.max_latency_ms)
    oracle = RemoteOracle(args.server) if args.server else InProcessOracle(args.db_url)
    with oracle:
        # roofline prediction: one calibration per host, then each prediction is arithmetic (the block
        # table, the default, times every new block: more accurate, ~10 s per new candidate here)
        guard = OracleBudget(oracle, budget, build=ofa, device="cpu", threads=1, latency_method=args.latency_method)
        study = optuna.create_study(directions=["maximize", "minimize"],
                                    sampler=optuna.samplers.NSGAIISampler(seed=args.seed, population_size=20))
        bar = tqdm(total=args.trials, desc="feasible candidates", unit="cand")
        evaluated = 0
        while evaluated < args.trials:
            # a generation at a time: one Filter call, its close calls measured in shared sessions
            for trial in guard.ask_feasible_many(study, min(args.batch, 2 * (args.trials - evaluated))):
                if evaluated == args.trials:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)  # asked for more than needed
                    continue
                (latency,) = guard.objectives(trial, ["latency_ms"])
                study.tell(trial, (synflow(ofa(trial)), latency))  # training would go here
                evaluated += 1
                bar.update()
        bar.close()
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    front = sorted(study.best_trials, key=lambda t: t.values[1])
    how = Counter(t.user_attrs.get(DECIDED_BY, "?") for t in study.trials)
    hits = sum(bool(t.user_attrs.get(CACHE_HIT)) for t in study.trials)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = out.with_suffix(".csv")
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["trial", "log_synflow_proxy", "latency_ms", "macs", "params", "decided_by", "on_front",
                    "suggestions"])
        front_ids = {t.number for t in front}
        for t in done:
            fig = t.user_attrs["oracle_figures"]
            w.writerow([t.number, t.values[0], t.values[1], fig["macs"], fig["params"], t.user_attrs[DECIDED_BY],
                        t.number in front_ids, t.params])
    png = out.with_suffix(".png")
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
        ax.scatter([t.values[1] for t in done], [t.values[0] for t in done], s=16, c="#4c72b0", label="evaluated")
        ax.plot([t.values[1] for t in front], [t.values[0] for t in front], "-o", c="#c44e52", ms=5,
                drawstyle="steps-post", label=f"Pareto front ({len(front)})")
        ax.set_xlabel("latency on this CPU, 1 thread (ms; paired measurement or prediction)")
        ax.set_ylabel("log synflow (zero-cost proxy, not accuracy)")
        ax.set_title(f"OFA-like space, NSGA-II: MACs <= {args.max_macs / 1e6:.0f}M, "
                     f"latency <= {args.max_latency_ms} ms")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(png)
        plt.close(fig)
        wrote = f"{png} and {table}"
    except ImportError:
        wrote = f"{table} (no PNG: matplotlib is not installed)"
    print(f"{len(study.trials)} candidates proposed, {len(done)} within budget and evaluated, "
          f"{guard.rejected} rejected by the budget before training; Pareto front of {len(front)}")
    print(f"the oracle answered {hits} from its cache; decided {how.get('analytic', 0)} analytically, "
          f"{how.get('predicted', 0)} by latency prediction, {how.get('measured', 0)} by measurement")
    print(f"wrote {wrote}; {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
