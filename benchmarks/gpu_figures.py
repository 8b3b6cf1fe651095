"""The figures issue 17 asks of a real GPU, in one run (``benchmarks/gpu_check.sh`` calls it).

1. EfficientNet-B0, FasterNet-T0, ResNet-50 and RegNet-Y-800MF at batch 1 and 64, fp32 and
   fp16 (channels-last, cuDNN autotuning on, eager, warm L2): per model, the paired median,
   p10/p90 and CV of ``--sessions`` fresh worker sessions (the four models share each session),
   and the spread (max-min)/median of the session figures (target <= 2%) beside the raw one.
2. Latency against FLOPs: ms per GFLOP of each model, and RegNet-Y-800MF against EfficientNet-B0
   (similar FLOPs): the claim that RegNet runs faster on GPUs, shown or refuted by the ratio.
3. Arithmetic intensity: one EfficientNet MBConv block's depthwise 3x3 conv and its two pointwise
   convs timed alone at the block's shapes; each one's share of the latency against its share
   of the FLOPs.
4. Calibrated peaks (fp32, fp16, bf16 matmul; copy bandwidth) against the H200's published
   figures (NVIDIA H200 SXM datasheet: FP32 67 TFLOPS, TF32 tensor 494 TFLOPS dense,
   FP16/BF16 tensor 989 TFLOPS dense, HBM3e 4.8 TB/s). Note: PyTorch runs fp32 matmul without
   TF32 by default, so the fp32 peak compares with 67, not 494.

Run on a GPU host from the repository root: ``python benchmarks/gpu_figures.py [--sessions 5]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cost_engine import analyze
from cost_engine.latency import LatencySettings, MemoryCache, calibrate, measure, measure_many
from cost_engine.latency.protocol import Protocol
from cost_engine.spec import ConvSpec

MODELS = ("efficientnet_b0", "fasternet_t0", "resnet50", "regnet_y_800mf")
H200 = {"float32": 67e12, "float16": 989e12, "bfloat16": 989e12, "hbm_bytes_per_s": 4.8e12}


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values) if values else float("nan")


def section_models(args: argparse.Namespace, cache: MemoryCache, out: dict[str, Any]) -> None:
    print(f"\n1. models: {args.sessions} fresh sessions each (the four models share every session)")
    print(f"{'model':<16} {'dtype':<8} {'batch':>5} {'median ms':>10} {'p10':>8} {'p90':>8} {'cv':>6} "
          f"{'spread':>7} {'raw spread':>10} {'throttled':>9}")
    protocol = Protocol(time_cap_s=args.time_cap)
    for dtype in args.dtypes.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            s = LatencySettings(device=args.device, batch_size=batch, dtype=dtype, memory_format="channels_last",
                                cudnn_benchmark=args.device != "cpu")
            per: dict[str, list[Any]] = {m: [] for m in MODELS}
            for _ in range(args.sessions):
                for m, r in zip(MODELS, measure_many(list(MODELS), s, cache=cache, sessions=1, refresh=True,
                                                     protocol=protocol), strict=True):
                    per[m].append(r)
            for m, rs in per.items():
                figures = [r.median_ms for r in rs]
                raw = [r.raw_median_ms for r in rs]
                row = {"median_ms": statistics.median(figures), "p10_ms": statistics.median(r.p10_ms for r in rs),
                       "p90_ms": statistics.median(r.p90_ms for r in rs), "cv": statistics.median(r.cv for r in rs),
                       "spread": spread(figures), "raw_spread": spread(raw),
                       "throttled_sessions": sum(r.details.get("throttled_sessions", 0) for r in rs)}
                out.setdefault("models", {}).setdefault(m, {})[f"{dtype}/b{batch}"] = row
                print(f"{m:<16} {dtype:<8} {batch:>5} {row['median_ms']:>10.3f} {row['p10_ms']:>8.3f} "
                      f"{row['p90_ms']:>8.3f} {row['cv']:>6.3f} {row['spread']:>7.1%} {row['raw_spread']:>10.1%} "
                      f"{row['throttled_sessions']:>9}")
    worst = max(r["spread"] for m in out["models"].values() for r in m.values())
    print(f"worst paired spread across sessions: {worst:.1%} (target <= 2%)")


def section_flops(out: dict[str, Any]) -> None:
    print("\n2. latency against FLOPs (ms per GFLOP at each setting)")
    for key in next(iter(out["models"].values())):
        b = key.split("/")[1]
        batch = int(b[1:])
        per_gflop = {}
        for m in MODELS:
            gflops = analyze(m, batch_size=batch).flops / 1e9
            per_gflop[m] = out["models"][m][key]["median_ms"] / gflops
        eff, reg = out["models"]["efficientnet_b0"][key]["median_ms"], out["models"]["regnet_y_800mf"][key]["median_ms"]
        print(f"{key:<12} " + "  ".join(f"{m} {v:.3f}" for m, v in per_gflop.items())
              + f"  | RegNet-Y-800MF / EfficientNet-B0 latency {reg / eff:.2f} "
              f"({'RegNet faster' if reg < eff else 'EfficientNet faster'})")


def section_intensity(args: argparse.Namespace, cache: MemoryCache, out: dict[str, Any]) -> None:
    batch, dtype = max(int(b) for b in args.batches.split(",")), args.dtypes.split(",")[-1]
    print(f"\n3. depthwise against dense: one MBConv block (112 -> 672 -> 112 channels, 14x14, batch {batch}, {dtype})")
    c, e, res = 112, 672, 14
    parts = {"expand 1x1": (ConvSpec(out_channels=e, kernel_size=1), c),
             "depthwise 3x3": (ConvSpec(out_channels=e, kernel_size=3, groups=e), e),
             "project 1x1": (ConvSpec(out_channels=c, kernel_size=1, act="none"), e)}
    s = dict(device=args.device, batch_size=batch, dtype=dtype, memory_format="channels_last",
             cudnn_benchmark=args.device != "cpu", resolution=res)
    lat, flops = {}, {}
    for name, (spec, cin) in parts.items():
        lat[name] = measure(spec, LatencySettings(in_channels=cin, **s), cache=cache, sessions=2,
                            time_cap_s=args.time_cap).median_ms
        flops[name] = analyze(spec, batch_size=batch, resolution=res, in_channels=cin).flops
    total_l, total_f = sum(lat.values()), sum(flops.values())
    for name in parts:
        print(f"{name:<14} {lat[name]:.4f} ms: {lat[name] / total_l:>6.1%} of the latency, "
              f"{flops[name] / total_f:>6.1%} of the FLOPs")
    out["intensity"] = {"latency_ms": lat, "flops": flops}


def section_peaks(args: argparse.Namespace, out: dict[str, Any]) -> None:
    print("\n4. calibrated ceilings against the H200's published figures")
    for dtype in args.peak_dtypes.split(","):
        c = calibrate(args.device, dtype, refresh=True)
        out.setdefault("calibration", {})[dtype] = {"peak_flops": c.peak_flops, "bandwidth": c.bandwidth_bytes_per_s}
        print(f"{dtype:<9} matmul {c.peak_flops / 1e12:8.1f} TFLOP/s ({c.peak_flops / H200[dtype]:.0%} of "
              f"{H200[dtype] / 1e12:.0f}); copy {c.bandwidth_bytes_per_s / 1e12:.2f} TB/s "
              f"({c.bandwidth_bytes_per_s / H200['hbm_bytes_per_s']:.0%} of 4.8)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--time-cap", type=float, default=0.5, help="candidate sampling seconds per session")
    ap.add_argument("--dtypes", default="float32,float16")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--peak-dtypes", default="float32,float16,bfloat16")
    ap.add_argument("--json", help="also write every figure to this file")
    args = ap.parse_args(argv)
    t0 = time.time()
    cache = MemoryCache()
    out: dict[str, Any] = {}
    section_models(args, cache, out)
    section_flops(out)
    section_intensity(args, cache, out)
    section_peaks(args, out)
    print(f"\n{time.time() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
