"""Repeatability under load: raw wall-clock medians against the paired figures.

Three candidates (EfficientNet-B0, FasterNet-T0, one OFA-like MBConv network). First each is
measured on the idle machine (``--idle-sessions`` fresh processes, no load): its *idle* figure
is the median of those sessions' raw medians, and the reference's anchor learns from them. Then
each candidate is measured ``--sessions`` more times (each a measurement of ``--per-figure`` fresh
processes, by default as many as the oracle's own measurement pools), one at a time, while a load
generator started here competes for the cores: 0, 1 or 2 busy processes (``--loads``, switched
between sessions). For each candidate it prints the spread (max-min)/median of the raw session
medians and of the paired session figures (ratio x the anchor learned over every session), and
each one's distance to the idle figure. Run from the repository root:

    python benchmarks/latency_repeatability.py                    # 1 thread, 8 loaded sessions
    python benchmarks/latency_repeatability.py --device cuda:0    # on a GPU host
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from latency_prediction import ofa_candidate

from cost_engine.latency import LatencySettings, MemoryCache, fingerprint, measure
from cost_engine.latency.anchor import BOOK
from cost_engine.latency.anchor import estimate as anchor_estimate
from cost_engine.latency.measure import DEFAULT_SESSIONS
from cost_engine.latency.protocol import Protocol
from cost_engine.latency.worker import NICE_ENV

_BUSY = "import time\nwhile True:\n    pass\n"


class Load:
    """``n`` busy Python processes for as long as the ``with`` lasts (bounded: killed on exit)."""

    def __init__(self, n: int):
        self.n = n
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Load:
        self.procs = [subprocess.Popen([sys.executable, "-c", _BUSY]) for _ in range(self.n)]
        time.sleep(0.2 if self.n else 0.0)
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def load_average() -> str:
    """The host's 1-minute load average now (what the figures were measured under)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:  # pragma: no cover - no load average on this platform
        return "n/a"


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--sessions", type=int, default=8, help="loaded sessions per candidate")
    ap.add_argument("--idle-sessions", type=int, default=3)
    ap.add_argument("--per-figure", type=int, default=DEFAULT_SESSIONS,
                    help="fresh sessions pooled into each loaded figure (default: what one measurement uses, "
                         f"{DEFAULT_SESSIONS}; 1: the single-session figure)")
    ap.add_argument("--loads", default="0,2,1,2,0,1,2,1", help="busy processes per loaded session, cycled")
    ap.add_argument("--time-cap", type=float, default=2.0, help="candidate sampling seconds per session")
    ap.add_argument("--pair-block", type=int, default=None,
                    help="calls per block of the paired protocol (default: the protocol's own)")
    ap.add_argument("--candidates", default="efficientnet_b0,fasternet_t0,ofa")
    ap.add_argument("--nice", default=None, help="nice value the measurement workers ask for (default -20; "
                                                 "'off': leave it, to see the pairing alone)")
    args = ap.parse_args(argv)
    if args.nice is not None:
        os.environ[NICE_ENV] = args.nice

    loads = [int(x) for x in args.loads.split(",")]
    settings = LatencySettings(device=args.device, threads=args.threads, batch_size=args.batch_size,
                               dtype=args.dtype, cudnn_benchmark=args.device != "cpu")
    fp = fingerprint(settings.resolved().device, args.threads)
    candidates: dict[str, Any] = {}
    for name in args.candidates.split(","):
        candidates[name] = ofa_candidate(random.Random(7)) if name == "ofa" else name
    print(f"on {fp['device_name']} ({args.device}), {args.threads} thread(s), batch {args.batch_size}, "
          f"{args.dtype}; torch {fp['torch']}; workers at nice {os.environ.get(NICE_ENV, '-20')}; "
          f"{args.idle_sessions} idle + {args.sessions} loaded figures of {args.per_figure} session(s) per "
          f"candidate, loads {loads[:args.sessions]}; {args.time_cap} s candidate sampling per session")
    protocol = Protocol(time_cap_s=args.time_cap)
    if args.pair_block is not None:
        protocol = dataclasses.replace(protocol, pair_block=args.pair_block)
    print(f"pairing in blocks of {protocol.pair_block} call(s), block statistic {protocol.pair_statistic}")
    cache = MemoryCache()
    t0 = time.time()
    idle: dict[str, Any] = {}
    for name, c in candidates.items():
        idle[name] = measure(c, settings, cache=cache, sessions=args.idle_sessions, protocol=protocol)
        r = idle[name]
        print(f"idle {name} (load {load_average()}): "
              f"raw session medians {', '.join(f'{x:.2f}' for x in r.raw_session_medians_ms)} ms; "
              f"paired {r.median_ms:.2f} ms (ratio {r.ratio:.4f} to {r.reference['name']}, "
              f"anchor {r.anchor_ms:.2f} ms; worker nice {r.details['worker_nice']})")
    loaded: dict[str, list[Any]] = {name: [] for name in candidates}
    for s in range(args.sessions):
        n = loads[s % len(loads)]
        with Load(n):
            for name, c in candidates.items():
                loaded[name].append(measure(c, settings, cache=cache, sessions=args.per_figure,
                                            protocol=protocol, refresh=True))
        print(f"session {s + 1} ({n} busy, load {load_average()}): " + "; ".join(
            f"{name} raw {rs[-1].raw_median_ms:.2f} ratio {rs[-1].ratio:.4f}" for name, rs in loaded.items()))

    print(f"\n{'candidate':<16} {'idle ms':>8} {'raw spread':>10} {'paired spread':>13} {'raw vs idle':>11} "
          f"{'paired vs idle':>14} {'anchor ms':>9} {'noisy':>5}")
    worst = 0.0
    for name, rs in loaded.items():
        ref = idle[name]
        log = BOOK.values(cache, ref.anchor_key, fresh=True)
        anchor = anchor_estimate(log)
        idle_ms = statistics.median(ref.raw_session_medians_ms)
        raw = [r.raw_median_ms for r in rs]
        paired = [r.ratio * anchor for r in rs]
        worst = max(worst, spread(paired))
        print(f"{name:<16} {idle_ms:>8.2f} {spread(raw):>10.1%} {spread(paired):>13.1%} "
              f"{statistics.median(raw) / idle_ms - 1:>+11.1%} {statistics.median(paired) / idle_ms - 1:>+14.1%} "
              f"{anchor:>9.2f} {sum(r.noisy for r in rs):>5}")
    print(f"\nworst paired spread {worst:.1%} (target <= 5% on a CPU, <= 2% on a GPU); {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
