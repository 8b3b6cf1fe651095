"""How many measurements a latency-budget filter of 1,000 candidates needs.

1,000 random candidates of the OFA-like MBConv space (``latency_prediction.py``) are filtered
against a latency limit (default: the median prediction, the hardest place for a limit):
an analytic MACs limit first, then block-table predictions corrected by a residual fitted on the
12 measured fit candidates of ``latency_prediction.py`` (same seed, same cache), and only the
candidates within ``z`` uncertainties of the limit are measured (paired with the reference, so
the verdicts do not depend on the minute of the host). ``--audit N`` (default 50) re-measures N
candidates the prediction decided alone and counts the verdicts that flip, by the paired figure
and, for comparison, by the raw wall clock of the same sessions.

Run ``latency_prediction.py`` first with the same ``--db`` (it fills the calibration, the fit
measurements and most of the block table); from the repository root:

    python benchmarks/latency_filter.py --threads 1 --audit 50
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

from latency_prediction import fasternet_candidate, ofa_candidate, open_cache, sample

from cost_engine import analyze
from cost_engine.latency import LatencySettings, Residual, filter_by_latency, measure_many, predict_many
from cost_engine.latency.predict import raw_estimates


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit-ms", type=float, default=None, help="default: the median prediction")
    ap.add_argument("--macs-percentile", type=float, default=0.9, help="analytic MACs limit: this quantile")
    ap.add_argument("--z", type=float, default=2.0)
    ap.add_argument("--sessions", type=int, default=1, help="sessions per measurement of a close call")
    ap.add_argument("--time-cap", type=float, default=0.3)
    ap.add_argument("--audit", type=int, default=50, help="re-measure this many prediction-decided candidates")
    ap.add_argument("--audit-sessions", type=int, default=3)
    ap.add_argument("--db", default="/tmp/latency_bench.sqlite")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dry-run", action="store_true", help="only count the measurements each limit would need")
    args = ap.parse_args(argv)

    settings = LatencySettings(device=args.device, threads=args.threads)
    cache = open_cache(args.db)
    t_start = time.time()
    # the residual: fitted on latency_prediction.py's 12 fit candidates (seed 0), measured there
    rng0 = random.Random(0)
    fit_set = sample(ofa_candidate, 58, rng0)[50:] + sample(fasternet_candidate, 24, rng0)[20:]
    fit_measured = measure_many(fit_set, settings, cache=cache, sessions=2, time_cap_s=0.5)
    fit_raw = [e[0] for e in raw_estimates(fit_set, settings, "block_table", cache=cache)[0]]
    residual = Residual.fit("block_table", fit_raw, [m.median_ms for m in fit_measured])
    print(f"residual on {residual.n} fit candidates ({sum(not m.cached for m in fit_measured)} measured now): "
          f"relative sigma {residual.rel_sigma:.1%}")

    candidates = sample(ofa_candidate, args.n, random.Random(args.seed))
    t0 = time.time()
    preds = predict_many(candidates, settings, cache=cache, residual=residual)
    new_blocks = preds[0].details["table_measurements_this_call"]
    print(f"{args.n} candidates predicted in {time.time() - t0:.0f} s ({new_blocks} blocks newly measured for the "
          f"table); predicted {min(p.median_ms for p in preds):.1f}-{max(p.median_ms for p in preds):.1f} ms")
    limit = args.limit_ms or statistics.median(p.median_ms for p in preds)
    macs = [analyze(c).macs for c in candidates]
    macs_limit = sorted(macs)[int(args.macs_percentile * (len(macs) - 1))]
    survivors = [p for p, m in zip(preds, macs, strict=True) if m <= macs_limit]
    # how many close calls (= measurements) a limit at each quantile of the predictions needs
    ordered = sorted(p.median_ms for p in preds)
    print(f"\nmeasurements needed ({len(survivors)} survivors of the MACs limit), by limit and z:")
    print(f"{'limit quantile':>15} {'limit ms':>9} " + " ".join(f"{f'z={z:g}':>7}" for z in (1.0, 1.5, 2.0)))
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        lim = ordered[int(q * (len(ordered) - 1))]
        close = [sum(1 for p in survivors if abs(p.median_ms - lim) < z * p.uncertainty_ms) for z in (1.0, 1.5, 2.0)]
        print(f"{q:>15.2f} {lim:>9.2f} " + " ".join(f"{c:>7}" for c in close))
    if args.dry_run:
        return 0
    by_id = {id(c): p for c, p in zip(candidates, preds, strict=True)}

    def predictor(cs: list, s: LatencySettings) -> list:
        return [by_id[id(c)] for c in cs]  # the predictions above (the table is filled)

    t0 = time.time()
    result = filter_by_latency(candidates, limit, settings, cache=cache, z=args.z, sessions=args.sessions,
                               time_cap_s=args.time_cap, predictor=predictor,
                               analytic=lambda c: analyze(c).macs <= macs_limit)
    print(f"\nlimit {limit:.2f} ms (analytic: MACs <= {macs_limit / 1e6:.0f} M), z = {args.z}")
    print(f"  rejected analytically:   {result.analytic_rejected}")
    print(f"  decided by prediction:   {result.predicted}")
    print(f"  measured (too close):    {result.measured}  ({result.measurements} new measurements, "
          f"{args.sessions} session(s) each, {time.time() - t0:.0f} s)")
    print(f"  feasible:                {len(result.feasible)} of {args.n}")
    wrong_measured = sum(1 for d in result.decisions if d["reason"] == "measured"
                         and (by_id[id(candidates[d['index']])].median_ms <= limit) != d["feasible"])
    print(f"  of the measured ones, the prediction's own side of the limit was wrong for {wrong_measured}")

    if args.audit:
        decided = [d["index"] for d in result.decisions if d["reason"] == "predicted"]
        chosen = random.Random(7).sample(decided, min(args.audit, len(decided)))
        audit = measure_many([candidates[i] for i in chosen], settings, cache=cache, sessions=args.audit_sessions,
                             time_cap_s=args.time_cap, refresh=True)
        print(f"audit: {len(chosen)} prediction-decided candidates measured ({args.audit_sessions} sessions each, "
              f"paired; {sum(m.noisy for m in audit)} noisy)")
        flips = raw_flips = 0
        for i, m in zip(chosen, audit, strict=True):
            p = by_id[id(candidates[i])]
            flipped = (m.median_ms <= limit) != result.decisions[i]["feasible"]
            flips += flipped
            raw_flips += (m.raw_median_ms <= limit) != result.decisions[i]["feasible"]
            if flipped:
                print(f"  flip: predicted {p.median_ms:.2f} +- {p.uncertainty_ms:.2f}, measured {m.median_ms:.2f} "
                      f"(CI {m.ci_low_ms:.2f}-{m.ci_high_ms:.2f}, raw {m.raw_median_ms:.2f}), limit {limit:.2f}")
        print(f"  {flips} verdict(s) of {len(chosen)} flip by the paired figure; {raw_flips} would by the raw one")
    print(f"total {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
