"""Repeatability: one candidate measured in N separate sessions (fresh worker processes).

Prints each session's median with its own within-session 95% CI, the spread of the session
medians, how many times wider that spread is than the within-session CI (why a measurement runs
several processes), the process CPU time and contention (wall / CPU time per thread: time spent
waiting for a core on a shared host), and the canary of each session. Run from the repository
root:

    python benchmarks/latency_repeatability.py --candidate efficientnet_b0 --sessions 5 --threads 1
    python benchmarks/latency_repeatability.py --device cuda:0          # on a GPU host
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from cost_engine.latency import LatencySettings, fingerprint, measure


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidate", default="efficientnet_b0", help="a built-in model name")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--time-cap", type=float, default=1.0, help="sampling seconds per session")
    ap.add_argument("--no-allocator-fix", action="store_true", help="demonstrate the glibc trap")
    args = ap.parse_args(argv)

    settings = LatencySettings(device=args.device, threads=args.threads, batch_size=args.batch_size, dtype=args.dtype,
                               cudnn_benchmark=args.device != "cpu")
    fp = fingerprint(settings.resolved().device, args.threads)
    print(f"{args.candidate} on {fp['device_name']} ({args.device}), {args.threads} thread(s), "
          f"batch {args.batch_size}, {args.dtype}; torch {fp['torch']}; {args.sessions} sessions, "
          f"{args.time_cap} s sampling cap each")
    t0 = time.time()
    r = measure(args.candidate, settings, sessions=args.sessions, time_cap_s=args.time_cap,
                allocator_fix=not args.no_allocator_fix)
    d = r.details
    print(f"\n{'session':>7} {'median ms':>10} {'95% CI +-':>10} {'CV':>6} {'runs':>6} {'cpu ms':>8} "
          f"{'faults/call':>11} {'canary ms':>10}")
    canary = r.canary["session_medians_ms"] if r.canary else []
    for i, med in enumerate(r.session_medians_ms):
        cpu = d["cpu_time_session_medians_ms"][i] if d["cpu_time_session_medians_ms"] else float("nan")
        can = canary[2 * i: 2 * i + 2]
        print(f"{i + 1:>7} {med:>10.3f} {d['session_ci_half_ms'][i]:>10.3f} {d['session_cv'][i]:>6.1%} "
              f"{d['samples_per_session'][i]:>6} {cpu:>8.3f} {d['page_faults_per_call_by_session'][i]:>11.2f} "
              f"{' / '.join(f'{c:.3f}' for c in can):>10}")
    meds = r.session_medians_ms
    spread = (max(meds) - min(meds)) / r.median_ms
    within = statistics.fmean(2 * h for h in d["session_ci_half_ms"]) / r.median_ms
    print(f"\nmedian of session medians: {r.median_ms:.3f} ms; p10 {r.p10_ms:.3f}, p90 {r.p90_ms:.3f}, "
          f"pooled CV {r.cv:.1%}, {r.runs} runs")
    print(f"spread of session medians (max-min)/median: {spread:.1%}; stdev/mean of medians: "
          f"{statistics.stdev(meds) / statistics.fmean(meds):.1%}")
    print(f"mean within-session 95% CI width: {within:.2%} of the median -> the across-process spread is "
          f"{spread / within if within > 0 else float('inf'):.1f}x wider")
    if d["cpu_time_session_medians_ms"]:
        cpus = d["cpu_time_session_medians_ms"]
        print(f"process CPU time per call: {statistics.median(cpus):.3f} ms, spread "
              f"{(max(cpus) - min(cpus)) / statistics.median(cpus):.1%}; contention (wall / CPU per thread) "
              f"{d['contention']:.2f}")
    if r.canary:
        c = r.canary["session_medians_ms"]
        print(f"canary: {min(c):.3f}-{max(c):.3f} ms across sessions "
              f"(spread {(max(c) - min(c)) / statistics.median(c):.1%})")
    print(f"first call (never timed as a sample): {r.first_call_ms:.2f} ms = {r.first_call_ms / r.median_ms:.1f}x "
          f"the median; uncertainty reported: +-{r.uncertainty_ms:.3f} ms; total {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
