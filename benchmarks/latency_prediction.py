"""Prediction quality: roofline, block lookup table and FLOPs alone against measured latency.

50 random candidates of an OFA-like MBConv space (MobileNetV3 skeleton; per block kernel 3/5/7
and expand 3/4/6, per stage depth 2/3/4, resolution 160-224 in steps of 16) and 20 of a
FasterNet space (embed 32/40/48/64, n_div 4/8, depths (1-2, 1-3, 4/6/8, 1-2), GELU, 224) are
measured on this device (fresh worker processes, the published protocol) and predicted three
ways. Each method is scored raw and after a residual fitted on a separate set of 12 measured
candidates (8 + 4): the share of predictions within +-10% and +-20%, the mean absolute
percentage error, and Kendall's tau (rank agreement, what a search that ranks candidates needs).
A PNG scatter of predicted against measured is written to ``--out``.

Everything goes through one cache (SQLite file, ``--db``): rerunning reuses every measurement,
and ``latency_filter.py`` reuses the block table and calibration. Run from the repository root:

    python benchmarks/latency_prediction.py --threads 1 --sessions 2 --out /tmp
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from cost_engine import analyze
from cost_engine.families.fasternet import fasternet
from cost_engine.latency import LatencySettings, Residual, calibrate, measure_many
from cost_engine.latency.predict import raw_estimates
from cost_engine.spec import ConvSpec, LinearSpec, MBConvSpec, NetworkSpec, PoolSpec

#: MobileNetV3-large skeleton as searched by Once-for-All: (width, stride, act, SE)
OFA_STAGES = ((24, 2, "relu", 0.0), (40, 2, "relu", 0.25), (80, 2, "hardswish", 0.0), (112, 1, "hardswish", 0.25),
              (160, 2, "hardswish", 0.25))
OFA_RESOLUTIONS = (160, 176, 192, 208, 224)


def ofa_candidate(rng: random.Random) -> NetworkSpec:
    stages = []
    for width, stride, act, se in OFA_STAGES:
        depth = rng.choice((2, 3, 4))
        stages.append(tuple(MBConvSpec(out_channels=width, expand_ratio=float(rng.choice((3, 4, 6))),
                                       kernel_size=rng.choice((3, 5, 7)), stride=stride if i == 0 else 1,
                                       se_ratio=se, act=act) for i in range(depth)))
    return NetworkSpec(
        stem=(ConvSpec(out_channels=16, kernel_size=3, stride=2, act="hardswish"),
              MBConvSpec(out_channels=16, expand_ratio=1.0, kernel_size=3, se_ratio=0.0, act="relu")),
        stages=tuple(stages),
        head=(ConvSpec(out_channels=960, kernel_size=1, act="hardswish"), PoolSpec(mode="global_avg", flatten=True),
              LinearSpec(out_features=1280, act="hardswish"), LinearSpec(out_features=1000)),
        resolution=rng.choice(OFA_RESOLUTIONS))


def fasternet_candidate(rng: random.Random) -> NetworkSpec:
    depths = (rng.choice((1, 2)), rng.choice((1, 2, 3)), rng.choice((4, 6, 8)), rng.choice((1, 2)))
    return fasternet(embed_dim=rng.choice((32, 40, 48, 64)), depths=depths, n_div=rng.choice((4, 8)),
                     act="gelu", resolution=224)


def sample(fn: Any, n: int, rng: random.Random) -> list[NetworkSpec]:
    """``n`` distinct candidates."""
    seen: dict[str, NetworkSpec] = {}
    while len(seen) < n:
        c = fn(rng)
        seen.setdefault(repr(c.to_dict()), c)
    return list(seen.values())


def open_cache(db: str) -> Any:
    from server.cache import CostCache

    return CostCache(db)


def kendall_tau(a: list[float], b: list[float]) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def scores(pred: list[float], meas: list[float]) -> dict[str, float]:
    err = [(p - m) / m for p, m in zip(pred, meas, strict=True)]
    return {
        "within10": sum(abs(e) <= 0.10 for e in err) / len(err),
        "within20": sum(abs(e) <= 0.20 for e in err) / len(err),
        "mape": statistics.fmean(abs(e) for e in err),
        "tau": kendall_tau(pred, meas),
    }


def scatter(path: Path, panels: dict[str, dict[str, tuple[list[float], list[float]]]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.8))
    for ax, (method, spaces) in zip(axes, panels.items(), strict=True):
        lo, hi = float("inf"), 0.0
        for (space, (pred, meas)), marker in zip(spaces.items(), ("o", "s"), strict=False):
            ax.scatter(meas, pred, s=14, marker=marker, label=space, alpha=0.8)
            lo, hi = min(lo, *meas, *pred), max(hi, *meas, *pred)
        xs = [lo * 0.8, hi * 1.25]
        ax.plot(xs, xs, "k-", lw=0.8)
        for f, style in ((1.1, ":"), (1.2, "--")):
            ax.plot(xs, [x * f for x in xs], "k" + style, lw=0.6)
            ax.plot(xs, [x / f for x in xs], "k" + style, lw=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured latency (ms)")
        ax.set_ylabel("predicted latency (ms)")
        ax.set_title(method)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sessions", type=int, default=2, help="fresh worker processes per measurement")
    ap.add_argument("--time-cap", type=float, default=0.5, help="sampling seconds per candidate per session")
    ap.add_argument("--ofa", type=int, default=50)
    ap.add_argument("--fasternet", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", default="/tmp/latency_bench.sqlite", help="cache (SQLite path or SQLAlchemy URL)")
    ap.add_argument("--out", default="/tmp", help="directory of the PNG scatter")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    ofa = sample(ofa_candidate, args.ofa + 8, rng)
    fnet = sample(fasternet_candidate, args.fasternet + 4, rng)
    test = {"ofa": ofa[:args.ofa], "fasternet": fnet[:args.fasternet]}
    fit_set = ofa[args.ofa:] + fnet[args.fasternet:]
    settings = LatencySettings(device=args.device, threads=args.threads)
    cache = open_cache(args.db)
    t_start = time.time()

    t0 = time.time()
    cal = calibrate(args.device, "float32", args.threads, cache=cache)
    print(f"calibration ({'cached' if cal.cached else f'{time.time() - t0:.0f} s'}): peak {cal.peak_flops / 1e9:.1f} "
          f"GFLOP/s, bandwidth {cal.bandwidth_bytes_per_s / 1e9:.1f} GB/s (in-cache "
          f"{cal.cache_bandwidth_bytes_per_s / 1e9:.1f}), overhead {cal.overhead_s_per_op * 1e6:.1f} us/op")

    everything = test["ofa"] + test["fasternet"] + fit_set
    t0 = time.time()
    raw: dict[str, list[float]] = {}
    for method in ("block_table", "roofline", "flops"):
        est, _, _ = raw_estimates(everything, settings, method, cache=cache, calibration=cal)
        raw[method] = [e[0] for e in est]
        if method == "block_table":
            print(f"block table: {est[0][2]['table_measurements_this_call']} new block measurements "
                  f"({time.time() - t0:.0f} s)")

    t0 = time.time()
    measured = measure_many(everything, settings, cache=cache, sessions=args.sessions, time_cap_s=args.time_cap)
    meas = [m.median_ms for m in measured]
    n_new = sum(not m.cached for m in measured)
    print(f"measured {len(everything)} candidates ({n_new} new) in {args.sessions} sessions: {time.time() - t0:.0f} s")
    spreads = [m.spread_across_sessions for m in measured]
    drift = [m.canary["drift"] for m in measured if m.canary and m.canary.get("drift")]
    print(f"across-session spread of a candidate's median: median {statistics.median(spreads):.1%}, "
          f"max {max(spreads):.1%}; canary drift {min(drift):.2f}-{max(drift):.2f}x of its first reference")

    n_test = len(test["ofa"]) + len(test["fasternet"])
    spaces = {"ofa": slice(0, len(test["ofa"])), "fasternet": slice(len(test["ofa"]), n_test)}
    fit = slice(n_test, len(everything))
    panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    print()
    print(f"{'method':<12} {'space':<10} {'variant':<10} {'+-10%':>6} {'+-20%':>6} {'MAPE':>7} {'tau':>6}")
    for method in ("roofline", "block_table", "flops"):
        residual = Residual.fit(method, raw[method][fit], meas[fit])
        corrected = [residual.apply(r) for r in raw[method]]
        panels[method + f" (+ residual, sigma {residual.rel_sigma:.0%})"] = {
            name: (corrected[sl], meas[sl]) for name, sl in spaces.items()}
        for name, sl in [*spaces.items(), ("both", slice(0, n_test))]:
            for variant, values in (("raw", raw[method]), ("corrected", corrected)):
                s = scores(values[sl], meas[sl])
                print(f"{method:<12} {name:<10} {variant:<10} {s['within10']:>6.0%} {s['within20']:>6.0%} "
                      f"{s['mape']:>7.1%} {s['tau']:>6.3f}")
        print(f"{'':<12} residual: measured = {residual.apply(1.0):.3g} * raw^{residual.slope:.3f}, "
              f"rel sigma {residual.rel_sigma:.1%} (fit on {residual.n})")
    flops = [analyze(c).flops for c in everything]
    print(f"\ncandidates: {n_test} test + {fit.stop - fit.start} fit; measured latency "
          f"{min(meas[:n_test]):.1f}-{max(meas[:n_test]):.1f} ms, "
          f"FLOPs {min(flops) / 1e6:.0f}-{max(flops) / 1e6:.0f} M")
    out = Path(args.out) / "latency_prediction.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    scatter(out, panels, f"{cal.fingerprint.get('device_name')} / {args.threads} thread(s), fp32, batch 1; "
                         f"{args.sessions} sessions per measurement")
    print(f"scatter: {out}\ntotal {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
