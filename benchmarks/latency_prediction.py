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

# the spaces live in the library (the CLI's `latency fit --space` samples them too)
from cost_engine.families.sampled import fasternet_candidate, ofa_candidate, sample
from cost_engine.latency import LatencySettings, Residual, calibrate, measure_many
from cost_engine.latency.predict import raw_estimates
from cost_engine.spec import NetworkSpec


def open_cache(db: str) -> Any:
    from cost_oracle.server.cache import CostCache

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


def scatter(path: Path, rows: dict[str, dict[str, dict[str, tuple[list[float], list[float]]]]], title: str) -> None:
    """One row of panels per ground truth (wall clock, CPU time), one panel per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ncols = max(len(p) for p in rows.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(5 * ncols, 4.6 * len(rows)), squeeze=False)
    for r, (truth, panels) in enumerate(rows.items()):
        for ax, (method, spaces) in zip(axes[r], panels.items(), strict=False):
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
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(ScalarFormatter())
                axis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(f"measured, {truth} (ms)")
            ax.set_ylabel("predicted (ms)")
            ax.set_title(f"{method}", fontsize=10)
            ax.legend(fontsize=8, title="dotted +-10%, dashed +-20%", title_fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def evaluate(raw: dict[str, list[float]], meas: list[float], spaces: dict[str, slice], fit: slice,
             n_test: int) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """Print the score table of every method, raw and residual-corrected; the scatter panels."""
    panels: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
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
    return panels


def block_table_cpu(candidates: list[NetworkSpec], settings: LatencySettings, cache: Any) -> list[float]:
    """The block-table sum of each candidate from its blocks' CPU time instead of wall time."""
    from cost_engine.latency import fingerprint
    from cost_engine.latency.block_table import table_items

    resolved = settings.resolved()
    fp = fingerprint(resolved.device, resolved.threads)
    out = []
    for c in candidates:
        items = table_items(c, (1, c.in_channels, c.resolution, c.resolution), resolved, fp)
        rows = cache.get_many([it.key for it in items])
        out.append(sum(rows[it.key]["details"]["cpu_time_median_ms"] for it in items))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sessions", type=int, default=2, help="fresh worker processes per measurement")
    ap.add_argument("--time-cap", type=float, default=0.5, help="sampling seconds per candidate per session")
    ap.add_argument("--block-sessions", type=int, default=2, help="worker sessions per block of the table")
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
        est, _, _ = raw_estimates(everything, settings, method, cache=cache, calibration=cal,
                                  block_sessions=args.block_sessions)
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
    print("\n== against measured wall-clock latency (the oracle's measurement) ==")
    rows = {"wall clock": evaluate(raw, meas, spaces, fit, n_test)}
    # the same comparison with contention removed: process CPU time per call, for the networks
    # and for the blocks of the table (1 thread: CPU time = time actually computing)
    cpu_meas = [m.details.get("cpu_time_median_ms") for m in measured]
    if args.threads == 1 and all(cpu_meas):
        cpu_raw = dict(raw)
        cpu_raw["block_table"] = block_table_cpu(everything, settings, cache)
        print("\n== against process CPU time per call (contention from other processes removed) ==")
        contention = [m.details["contention"] for m in measured]
        print(f"contention (wall / CPU time) of the measurements: median {statistics.median(contention):.2f}, "
              f"range {min(contention):.2f}-{max(contention):.2f}")
        rows["process CPU time"] = evaluate(cpu_raw, cpu_meas, spaces, fit, n_test)
    flops = [analyze(c).flops for c in everything]
    print(f"\ncandidates: {n_test} test + {fit.stop - fit.start} fit; measured latency "
          f"{min(meas[:n_test]):.1f}-{max(meas[:n_test]):.1f} ms, "
          f"FLOPs {min(flops) / 1e6:.0f}-{max(flops) / 1e6:.0f} M")
    out = Path(args.out) / "latency_prediction.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    scatter(out, rows, f"{cal.fingerprint.get('device_name')} / {args.threads} thread(s), fp32, batch 1; "
                         f"{args.sessions} sessions per measurement")
    print(f"scatter: {out}\ntotal {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
