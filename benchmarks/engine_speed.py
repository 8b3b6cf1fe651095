"""Engine speed, measured side by side in one run (issue 3).

1. ``analyze`` of an EfficientNet-B0 spec the process has not seen (block memo cleared before
   every repetition) against fvcore ``FlopCountAnalysis`` on the built module and torch
   ``FlopCounterMode`` on a meta-device module. Targets: >= 100x and >= 30x.
2. 10,000 distinct random candidates of an OFA-like MBConv space (per-block kernel 3/5/7,
   expand 3/4/6, depth 2/3/4 per stage, resolution 160-224), analyzed on one core. Target:
   < 10 s. Also the speed-up block memoization gives (the same candidates with the memo cleared
   before each one).

Run: ``.venv/bin/python benchmarks/engine_speed.py [--candidates 10000]``
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

from cost_engine import analyze, resolve
from cost_engine.analyze import block_summary
from cost_engine.expand.registry import expand_block_layout
from cost_engine.spec import ConvSpec, LinearSpec, MBConvSpec, NetworkSpec, PoolSpec


def clear_memo() -> None:
    block_summary.cache_clear()
    expand_block_layout.cache_clear()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_b0(repeats: int) -> None:
    import torch
    from fvcore.nn import FlopCountAnalysis
    from torch.utils.flop_counter import FlopCounterMode

    import cost_engine

    torch.set_num_threads(1)
    spec = resolve("efficientnet_b0")

    def ours() -> None:
        clear_memo()
        analyze(spec)

    model = cost_engine.build(spec).eval()
    x = torch.randn(1, 3, 224, 224)

    def fvcore() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = FlopCountAnalysis(model, x)
            a.unsupported_ops_warnings(False)
            a.uncalled_modules_warnings(False)
            a.total()

    with torch.device("meta"):
        meta_model = cost_engine.build(spec).eval()
    xm = torch.empty(1, 3, 224, 224, device="meta")

    def flop_counter() -> None:
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            meta_model(xm)
        fc.get_total_flops()

    ours()  # import-time work is not per-spec work
    fvcore()
    flop_counter()
    # interleaved, so a change of machine load hits all three alike (these machines are shared)
    t_ours: list[float] = []
    t_fv: list[float] = []
    t_fc: list[float] = []
    for _ in range(repeats):
        t_ours.extend(timed(ours) for _ in range(10))
        t_fv.append(timed(fvcore))
        t_fc.append(timed(flop_counter))
    print(f"EfficientNet-B0, unseen spec (block memo cleared each time), {repeats} interleaved rounds:")
    print("                              median        min   ratio(median) ratio(min)")
    rows = [("cost_engine.analyze", t_ours, None), ("fvcore FlopCountAnalysis", t_fv, 100),
            ("FlopCounterMode (meta)", t_fc, 30)]
    for name, times, target in rows:
        med, low = statistics.median(times), min(times)
        line = f"  {name:26s} {med * 1e3:8.3f} ms {low * 1e3:8.3f} ms"
        if target is not None:
            line += (f"   {med / statistics.median(t_ours):9.1f}x {low / min(t_ours):9.1f}x"
                     f"   (target >= {target}x)")
        print(line)


STAGES = [(24, 2), (40, 2), (80, 2), (112, 1), (160, 2)]  # (out channels, first stride), OFA MobileNetV3-like


def ofa_candidate(rng: random.Random) -> tuple[NetworkSpec, int]:
    stages = []
    for out, stride in STAGES:
        depth = rng.choice((2, 3, 4))
        blocks = tuple(
            MBConvSpec(out, expand_ratio=rng.choice((3, 4, 6)), kernel_size=rng.choice((3, 5, 7)),
                       stride=stride if i == 0 else 1, se_ratio=0.25 if out in (40, 112, 160) else 0.0,
                       act="hardswish" if out >= 80 else "relu")
            for i in range(depth))
        stages.append(blocks)
    net = NetworkSpec(
        stem=(ConvSpec(16, 3, 2, act="hardswish"), MBConvSpec(16, expand_ratio=1, se_ratio=0.0, act="relu")),
        stages=tuple(stages),
        head=(ConvSpec(960, 1, act="hardswish"), PoolSpec("global_avg", flatten=True),
              LinearSpec(1280, act="hardswish"), LinearSpec(1000)),
    )
    return net, rng.randrange(160, 225, 4)


def bench_space(n: int, no_memo_sample: int) -> None:
    rng = random.Random(0)
    seen: set[tuple[NetworkSpec, int]] = set()
    while len(seen) < n:
        seen.add(ofa_candidate(rng))
    candidates = list(seen)
    clear_memo()
    t0 = time.perf_counter()
    for spec, res in candidates:
        analyze(spec, resolution=res)
    t_all = time.perf_counter() - t0
    info = block_summary.cache_info()
    sample = candidates[:no_memo_sample]
    t0 = time.perf_counter()
    for spec, res in sample:
        clear_memo()
        analyze(spec, resolution=res)
    t_cold = (time.perf_counter() - t0) / len(sample)
    print(f"OFA-like MBConv space: {n} distinct candidates (one process, OMP_NUM_THREADS=1)")
    print(f"  total {t_all:.2f} s  ({t_all / n * 1e3:.3f} ms per candidate)   target < 10 s")
    print(f"  without block memo: {t_cold * 1e3:.3f} ms per candidate (sample of {len(sample)})")
    print(f"  block memoization speed-up: {t_cold / (t_all / n):.1f}x  (distinct blocks cached: {info.currsize})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--skip-b0", action="store_true")
    args = parser.parse_args()
    if not args.skip_b0:
        bench_b0(args.repeats)
    bench_space(args.candidates, no_memo_sample=200)


if __name__ == "__main__":
    main()
