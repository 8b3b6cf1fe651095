"""The learned kernel predictor (issue #11) on this device against held-out measured networks.

Three spaces (``cost_engine/families/sampled.py``): OFA-like MBConv, FasterNet and a ResNet-like
space. Per space, ``--train`` candidates make the training space (their units are sampled up to
``--max-units``, a share re-sampled near the worst-predicted units, ``--networks`` of them in all
measured whole for the overhead term and interval) and ``--test`` other candidates, none of which
is in the training set, are measured and predicted; ``--unit-pool`` more candidates per space add
their units to the sampling only (neither measured whole nor held out nor in the filter). Scored in
the same run: the kernel model, the block table, the roofline and FLOPs alone (the last three
corrected by the power-law residual fitted on the same measured training networks): share within
+-10% and +-20%, MAPE, Kendall tau overall and per space, and the kernel model's 90% interval
coverage. Then the latency filter (``--filter`` fresh candidates of the three spaces, limit at
their median prediction, decided by the kernel model's interval; of the close calls a probe is
measured and decides the others it can, the rest are measured) and an audit that re-measures
``--audit`` of the verdicts decided without a measurement, drawn at random, plus calibrated ones up
to ``--audit-calibrated``, and counts verdicts that flip. The load average is printed at the start
and the end (a loaded host is a different device). A PNG scatter goes to ``--out``.

    python benchmarks/kernel_prediction.py --train 12 --test 10 --unit-pool 40 --max-units 1200 \
        --networks 30 --db /tmp/kernel_bench.sqlite --out /tmp
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latency_prediction import kendall_tau, open_cache

from cost_engine.families.sampled import SPACES, sample
from cost_engine.latency import LatencySettings, Residual, calibrate, filter_by_latency, measure_many
from cost_engine.latency.budget import FILTER_SESSIONS, decision_band
from cost_engine.latency.kernel_predict import fit_kernel_predictor, predict_with_kernels
from cost_engine.latency.predict import raw_estimates
from cost_engine.latency.probe import PROBE


def scores(pred: list[float], meas: list[float]) -> dict[str, float]:
    err = [(p - m) / m for p, m in zip(pred, meas, strict=True)]
    return {"within10": sum(abs(e) <= 0.10 for e in err) / len(err),
            "within20": sum(abs(e) <= 0.20 for e in err) / len(err),
            "mape": statistics.fmean(abs(e) for e in err), "tau": kendall_tau(pred, meas)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train", type=int, default=16, help="training candidates per space")
    ap.add_argument("--test", type=int, default=12, help="held-out candidates per space")
    ap.add_argument("--unit-pool", type=int, default=0,
                    help="more candidates per space whose units join the sampling (never measured whole, never "
                         "held out): what `cost-oracle latency fit --space resnet:N` with a larger N does")
    ap.add_argument("--max-units", type=int, default=360, help="unit measurement budget")
    ap.add_argument("--networks", type=int, default=30, help="training networks measured whole (all spaces)")
    ap.add_argument("--sessions", type=int, default=2, help="sessions per network measurement")
    ap.add_argument("--time-cap", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--adaptive", type=float, default=0.4, help="share of --max-units re-sampled adaptively")
    ap.add_argument("--budget-min", type=float, default=None, help="profiling budget of the fit, minutes")
    ap.add_argument("--no-block-table", dest="block_table", action="store_false",
                    help="leave the block table out (its block measurements take minutes)")
    ap.add_argument("--filter", type=int, default=1000, help="candidates of the latency filter (0: skip it)")
    ap.add_argument("--audit", type=int, default=50, help="prediction-decided filter verdicts re-measured")
    ap.add_argument("--audit-calibrated", type=int, default=30,
                    help="verdicts the probe decided (calibrated) re-measured in all, the random audit's included")
    ap.add_argument("--z", type=float, default=None,
                    help="the filter's first-stage band in uncertainties (default: the interval a prediction states)")
    ap.add_argument("--filter-sessions", type=int, default=FILTER_SESSIONS,
                    help="sessions per close call the filter measures (the filter's own default)")
    ap.add_argument("--probe", type=int, default=PROBE, help="close calls the filter measures first (0: no probe)")
    ap.add_argument("--no-filter-measure", dest="filter_measure", action="store_false",
                    help="count the filter's close calls instead of measuring them (the audit still measures)")
    ap.add_argument("--db", default="/tmp/kernel_bench.sqlite")
    ap.add_argument("--out", default="/tmp")
    args = ap.parse_args(argv)
    print(f"load average at start: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")

    rng = random.Random(args.seed)
    train: list[Any] = []
    test: dict[str, list[Any]] = {}
    unit_pool: list[Any] = []
    for name, fn in SPACES.items():
        cands = sample(fn, args.train + args.test + args.unit_pool, rng)
        train.extend(cands[:args.train])
        test[name] = cands[args.train:args.train + args.test]
        unit_pool.extend(cands[args.train + args.test:])
    # the networks measured whole: interleaved across spaces so each space contributes
    per = [train[i::args.train] for i in range(args.train)]
    train = [c for group in per for c in group]
    settings = LatencySettings(threads=args.threads)
    cache = open_cache(args.db)
    t0 = time.time()

    def progress(stage: str, done: int, total: int) -> None:
        print(f"  fit: {stage} {done}/{total} ({time.time() - t0:.0f} s)", flush=True)

    model = fit_kernel_predictor(train + unit_pool, settings, cache=cache, max_units=args.max_units,
                                 networks=args.networks, network_sessions=args.sessions, time_cap_s=args.time_cap,
                                 progress=progress, adaptive=args.adaptive,
                                 budget_s=args.budget_min * 60 if args.budget_min else None)
    st = model.stats
    print(f"fit: {st['unit_measurements']} new unit measurements, {st['units']} units timed of "
          f"{st['max_units']} budgeted ({st['distinct_units_in_space']} distinct units in the training space), "
          f"{st['network_measurements']} new network measurements; profiling {st['profiling_s'] / 60:.1f} min "
          f"this run; types with their own model: {st['types']}")
    for r in st["adaptive_rounds"]:
        print(f"  adaptive round: {r['validation_units']} validation units, median |log err| "
              f"{r['median_abs_log_error']:.3f} (max {r['max_abs_log_error']:.3f}), +{r['resampled']} near "
              f"{'/'.join(r['worst_types'])}")

    everything = [c for cs in test.values() for c in cs]
    t1 = time.time()
    measured = measure_many(everything, settings, cache=cache, sessions=args.sessions, time_cap_s=args.time_cap)
    meas = [m.median_ms for m in measured]
    print(f"held-out: {len(everything)} measured in {time.time() - t1:.0f} s, "
          f"{min(meas):.1f}-{max(meas):.1f} ms")

    kernel = predict_with_kernels(everything, settings, cache=cache)
    preds = {"kernel": [p.median_ms for p in kernel]}
    fit_nets = train[:args.networks]
    fit_meas = [m.median_ms for m in measure_many(fit_nets, settings, cache=cache, sessions=args.sessions,
                                                 time_cap_s=args.time_cap)]
    cal = calibrate("cpu", "float32", args.threads, cache=cache)
    t_table = time.time()
    for method in ("block_table", "roofline", "flops") if args.block_table else ("roofline", "flops"):
        raw_fit = [e[0] for e in raw_estimates(fit_nets, settings, method, cache=cache, calibration=cal)[0]]
        res = Residual.fit(method, raw_fit, fit_meas)
        raw_test = [e[0] for e in raw_estimates(everything, settings, method, cache=cache, calibration=cal)[0]]
        preds[method] = [res.apply(r) for r in raw_test]
        if method == "block_table":
            print(f"block table: filled for the fit and held-out networks in {time.time() - t_table:.0f} s")
    bounds: dict[str, slice] = {}
    start = 0
    for name, cs in test.items():
        bounds[name] = slice(start, start + len(cs))
        start += len(cs)
    print(f"\n{'method':<9} {'space':<10} {'+-10%':>6} {'+-20%':>6} {'MAPE':>6} {'tau':>6}")
    for method, p in preds.items():
        for name, sl in [("all", slice(0, len(everything))), *bounds.items()]:
            s = scores(p[sl], meas[sl])
            print(f"{method:<9} {name:<10} {s['within10']:>6.0%} {s['within20']:>6.0%} {s['mape']:>6.1%} "
                  f"{s['tau']:>6.2f}")
    inside = sum(k.ci_low_ms <= m <= k.ci_high_ms for k, m in zip(kernel, meas, strict=True))
    widths = [k.ci_high_ms / k.median_ms - 1 for k in kernel]
    print(f"\nkernel 90% interval: {inside}/{len(kernel)} held-out measurements inside ({inside / len(kernel):.0%}); "
          f"half-width +{statistics.median(widths):.1%} (median)")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(preds), figsize=(5 * len(preds), 4.5))
        for ax, (method, p) in zip(axes, preds.items(), strict=True):
            lo, hi = min(meas) * 0.8, max(meas) * 1.2
            ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.9", zorder=0,
                            label="+-10%")
            ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, zorder=1)
            for name, sl in bounds.items():
                ax.scatter(meas[sl], p[sl], label=name, s=14, zorder=2)
            ax.set(xscale="log", yscale="log", xlabel="measured ms", ylabel="predicted ms", title=method)
            ax.legend()
        out = Path(args.out) / "kernel_prediction.png"
        fig.tight_layout()
        fig.savefig(out, dpi=110)
        print(f"scatter: {out}")
    except ImportError:
        print("scatter: skipped (matplotlib missing)")
    if args.filter:
        filter_audit(args, train + unit_pool, everything, settings, cache)
    print(f"load average at end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"total {time.time() - t0:.0f} s")
    return 0


def filter_audit(args: argparse.Namespace, train: list[Any], test: list[Any], settings: Any, cache: Any) -> None:
    """The latency filter over fresh candidates, decided by the kernel model's interval; then an
    audit that re-measures prediction-decided verdicts (fresh sessions) and counts flips."""
    seen = {json.dumps(c.to_dict(), sort_keys=True) for c in train + test}
    rng = random.Random(args.seed + 1)
    pool: list[Any] = []
    origin: list[int] = []  # the space each came from
    fns = list(SPACES.values())
    misses = dict.fromkeys(range(len(fns)), 0)
    turn = 0
    while len(pool) < args.filter and misses:  # round robin; a space with 200 misses in a row is spent
        i = list(misses)[turn % len(misses)]
        c = fns[i](rng)
        key = json.dumps(c.to_dict(), sort_keys=True)
        if key in seen:
            misses[i] += 1
            if misses[i] >= 200:
                del misses[i]
            continue
        misses[i] = 0
        seen.add(key)
        pool.append(c)
        origin.append(i)
        turn += 1
    t0 = time.time()
    preds = predict_with_kernels(pool, settings, cache=cache)
    per_space = {name: origin.count(i) for i, name in enumerate(SPACES)}
    print(f"\nfilter: {len(pool)} fresh candidates ({per_space}) predicted in {time.time() - t0:.1f} s")
    limit = statistics.median(p.median_ms for p in preds)
    by_id = {id(c): p for c, p in zip(pool, preds, strict=True)}
    t0 = time.time()
    if args.filter_measure:
        result = filter_by_latency(pool, limit, settings, cache=cache, sessions=args.filter_sessions,
                                   time_cap_s=args.time_cap, predictor=lambda cs, s: [by_id[id(c)] for c in cs],
                                   probe=args.probe, z=args.z)
        first = sum(d["reason"] != "predicted" for d in result.decisions)
        calibrated = sum(d["reason"] == "calibrated" for d in result.decisions)
        print(f"  limit {limit:.2f} ms (the median prediction): {first} close calls ({first / len(pool):.1%}) of which "
              f"{calibrated} decided by the probe of {args.probe} (calibrated); measured {result.measured} "
              f"({result.measured / len(pool):.1%}; {result.measurements} new, {time.time() - t0:.0f} s), "
              f"feasible {len(result.feasible)}")
        decisions = result.decisions
        names = list(SPACES)
        for reason in ("calibrated", "measured"):
            per = {n: sum(d["reason"] == reason and origin[d["index"]] == k for d in decisions)
                   for k, n in enumerate(names)}
            print(f"    {reason} per space: {per}")
    else:  # the filter's first stage (decision_band): its close calls counted, not timed
        decisions = []
        for i, p in enumerate(preds):
            low, high = decision_band(p, args.z)
            reason = "measured" if low <= limit < high else "predicted"
            decisions.append({"index": i, "reason": reason, "feasible": high <= limit})
        close = sum(d["reason"] == "measured" for d in decisions)
        print(f"  limit {limit:.2f} ms (the median prediction): decided by prediction {len(pool) - close}, close "
              f"calls {close} ({close / len(pool):.1%}; not measured in this run, so no probe)")
    decided = [d["index"] for d in decisions if d["reason"] in ("predicted", "calibrated")]
    calibrated = [d["index"] for d in decisions if d["reason"] == "calibrated"]
    rng = random.Random(7)
    chosen = rng.sample(decided, min(args.audit, len(decided)))
    extra = [i for i in calibrated if i not in chosen]
    extra = rng.sample(extra, min(max(0, args.audit_calibrated - sum(i in calibrated for i in chosen)), len(extra)))
    t0 = time.time()
    audit = measure_many([pool[i] for i in chosen + extra], settings, cache=cache, sessions=3,
                         time_cap_s=args.time_cap, refresh=True)
    flips = {"random": 0, "calibrated": 0}
    for n, (i, m) in enumerate(zip(chosen + extra, audit, strict=True)):
        if (m.median_ms <= limit) != decisions[i]["feasible"]:
            p = by_id[id(pool[i])]
            if n < len(chosen):
                flips["random"] += 1
            if i in calibrated:
                flips["calibrated"] += 1
            print(f"  flip ({decisions[i]['reason']}): predicted {p.median_ms:.2f} "
                  f"({p.ci_low_ms:.2f}-{p.ci_high_ms:.2f}), measured {m.median_ms:.2f}, limit {limit:.2f}")
    n_cal = sum(i in calibrated for i in chosen + extra)
    if calibrated:
        print(f"  audit of the calibrated verdicts: {n_cal} of {len(calibrated)} re-measured "
              f"({sum(i in calibrated for i in chosen)} in the random audit): {flips['calibrated']} flip(s)")
    closest = min((abs(by_id[id(pool[i])].median_ms / limit - 1) for i in chosen), default=0.0)
    print(f"  audit: {len(chosen)} verdicts decided without a measurement, drawn at random, re-measured (3 fresh "
          f"sessions each; {len(chosen) + len(extra)} in {time.time() - t0:.0f} s): {flips['random']} flip(s); the "
          f"closest of them was predicted {closest:.1%} from the limit")


if __name__ == "__main__":
    sys.exit(main())
