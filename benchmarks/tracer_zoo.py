"""The tracer on real model zoos: params, MACs and speed against torchvision/timm and the real tools.

Development only, never CI: it needs torchvision and timm, which do not import beside the
project's pinned torch. Run it in a separate environment (issue 13)::

    python3.11 -m venv /tmp/zoovenv
    /tmp/zoovenv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm fvcore ultralytics-thop ptflops
    PYTHONPATH=. /tmp/zoovenv/bin/python benchmarks/tracer_zoo.py [--only NAME,...] [--tools]

Per model it prints:

* params: ours against ``sum(p.numel())`` of the parameters the forward used (a real eval forward
  with a tensor hook on every parameter tells which), and the unused ones apart;
* MACs: ours against torch's ``FlopCounterMode`` (FLOPs / 2; it counts convolution, mm/addmm/bmm
  and attention, which is what our MACs are) where that tool covers every MAC op of the model,
  else against an independent count given below (recurrent layers);
* complete: whether our report says its totals are complete, and the unknown ops;
* time: our tracer against fvcore's ``FlopCountAnalysis(...).total()`` (the median of 3).

With ``--tools`` the views (what fvcore, thop, ptflops, FlopCounterMode would print) are compared
with the real tools too: each view must equal the tool to the unit or be marked inexact.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

warnings.filterwarnings("ignore")


def _tv(name: str, **kw: Any) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import torchvision.models as tvm
        import torchvision.models.segmentation as seg
        import torchvision.models.video as video

        for mod in (tvm, seg, video):
            if hasattr(mod, name):
                return getattr(mod, name)(weights=None, **kw)
        raise KeyError(name)

    return make


def _timm(name: str, **kw: Any) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, **kw)

    return make


class _Decoder(nn.Module):
    """A transposed-conv decoder (DCGAN-like)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
                                 nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
                                 nn.ConvTranspose2d(16, 3, 4, 2, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _lstm_macs(m: nn.LSTM, steps: int, batch: int) -> int:
    return steps * batch * sum(p.numel() for n, p in m.named_parameters() if n.startswith("weight"))


IMG = (1, 3, 224, 224)
#: name -> (factory, forward inputs, independent MAC count or None for FlopCounterMode)
ZOO: dict[str, tuple[Callable[[], nn.Module], tuple[Any, ...], Callable[[nn.Module], int] | None]] = {
    **{n: (_tv(n), (IMG,), None) for n in (
        "resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2", "mobilenet_v2", "mobilenet_v3_large",
        "efficientnet_b0", "efficientnet_v2_s", "regnet_y_400mf", "regnet_x_800mf", "convnext_tiny",
        "shufflenet_v2_x1_0", "squeezenet1_0", "densenet121", "googlenet", "vgg11", "alexnet", "mnasnet0_5",
        "vit_b_16", "swin_t", "swin_v2_t", "maxvit_t")},
    "inception_v3": (_tv("inception_v3", aux_logits=True, init_weights=False), ((1, 3, 299, 299),), None),
    "fcn_resnet50": (_tv("fcn_resnet50", weights_backbone=None), ((1, 3, 256, 256),), None),
    "deeplabv3_mobilenet_v3_large": (_tv("deeplabv3_mobilenet_v3_large", weights_backbone=None),
                                     ((1, 3, 256, 256),), None),
    "lraspp_mobilenet_v3_large": (_tv("lraspp_mobilenet_v3_large", weights_backbone=None), ((1, 3, 256, 256),), None),
    "r3d_18": (_tv("r3d_18"), ((1, 3, 8, 112, 112),), None),
    **{n: (_timm(n), (IMG,), None) for n in (
        "coat_lite_tiny", "levit_128", "mobilevit_s", "poolformer_s12", "mixer_b16_224", "resnetv2_50x1_bit",
        "fasternet_t0", "convnextv2_atto", "deit_tiny_patch16_224", "efficientformer_l1", "ghostnet_100",
        "regnetz_b16", "cspresnet50", "dla34", "hrnet_w18_small", "res2net50_26w_4s", "selecsls42b", "tf_mixnet_s",
        "edgenext_xx_small", "mobilenetv4_conv_small", "tinynet_e", "nfnet_l0", "vit_small_patch16_224",
        "swin_tiny_patch4_window7_224", "pvt_v2_b0", "twins_svt_small", "xcit_tiny_12_p16_224", "crossvit_tiny_240")},
    "lstm": (lambda: nn.LSTM(128, 256, num_layers=2), ((32, 4, 128),), lambda m: _lstm_macs(m, 32, 4)),
    "transformer": (lambda: nn.Transformer(d_model=128, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
                                           dim_feedforward=256), ((20, 2, 128), (12, 2, 128)), None),
    "decoder": (_Decoder, ((1, 64, 8, 8),), None),
}
ZOO["crossvit_tiny_240"] = (_timm("crossvit_tiny_240"), ((1, 3, 240, 240),), None)


def _inputs(spec: tuple[Any, ...]) -> list[torch.Tensor]:
    return [torch.randn(s) for s in spec]


def used_params(model: nn.Module, inputs: list[torch.Tensor]) -> int:
    """Elements of the distinct parameters a real eval forward reads (by autograd: a parameter
    that reaches the output has a gradient)."""
    params = list({id(p): p for p in model.parameters()}.values())
    for p in params:
        p.grad = None
    out = model(*inputs)
    leaves = [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor) and t.requires_grad]
    grads = torch.autograd.grad([t.float().sum() for t in leaves], params, allow_unused=True)
    return sum(p.numel() for p, g in zip(params, grads, strict=True) if g is not None)


def flop_counter_macs(model: nn.Module, inputs: list[torch.Tensor]) -> int:
    """FlopCounterMode / 2, made to see every MAC op: the fused CPU fast paths of
    ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` (which it has no formula for) are
    switched off, and the CPU flash attention kernel gets the formula torch gives the other SDPA
    kernels."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_flash(query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return sdpa_flop_count(query, key, value)  # register_flop_formula hands shapes over

    aten = torch.ops.aten
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: cpu_flash}
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as fc:
            model(*inputs)
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    return fc.get_total_flops() // 2


def real_tools(model: nn.Module, inputs: list[torch.Tensor]) -> dict[str, dict[str, int]]:
    """What each real tool prints for ``model`` (the headline number and, where it has one, params),
    as ``cost_engine.views`` names them; a tool that fails on the model is left out."""
    import copy

    out: dict[str, dict[str, int]] = {}
    try:
        from fvcore.nn import FlopCountAnalysis, parameter_count

        fa = FlopCountAnalysis(model, tuple(inputs)).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        out["fvcore"] = {"flops": int(fa.total()), "params": int(parameter_count(model)[""])}
    except Exception:  # a tool that cannot run the model is not compared
        pass
    try:
        import thop

        macs, params = thop.profile(copy.deepcopy(model), inputs=tuple(inputs), verbose=False)
        out["thop"] = {"macs": int(macs), "params": int(params)}
    except Exception:
        pass
    if len(inputs) == 1:
        try:
            from ptflops import get_model_complexity_info

            macs, params = get_model_complexity_info(copy.deepcopy(model), tuple(inputs[0].shape[1:]),
                                                     as_strings=False, backend="pytorch",
                                                     print_per_layer_stat=False, verbose=False)
            out["ptflops"] = {"macs": int(macs) * inputs[0].shape[0], "params": int(params)}
        except Exception:
            pass
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(*inputs)
    out["flop_counter_mode"] = {"flops": int(fc.get_total_flops())}
    return out


def _median_s(fn: Callable[[], Any], n: int = 3) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated model names")
    ap.add_argument("--no-time", action="store_true", help="skip the timing against fvcore")
    ap.add_argument("--tools", action="store_true", help="compare the views with the real tools")
    args = ap.parse_args()
    from cost_engine import analyze_module

    names = args.only.split(",") if args.only else list(ZOO)
    ok_params = ok_macs = faster = complete = 0
    views_ok: dict[str, int] = {}
    views_seen: dict[str, int] = {}
    views_equal: dict[str, int] = {}
    rows = []
    for name in names:
        make, spec, reference = ZOO[name]
        torch.manual_seed(0)
        model = make().eval()
        inputs = _inputs(spec)
        try:
            report = analyze_module(model, inputs=[torch.empty(s) for s in spec])
        except Exception as exc:  # a zoo run reports and goes on
            print(f"{name:32s} TRACE FAILED {type(exc).__name__}: {str(exc)[:200]}")
            continue
        with torch.enable_grad():
            want_params = used_params(model, inputs)
        want_macs = reference(model) if reference is not None else flop_counter_macs(model, inputs)
        p_ok, m_ok = report.params == want_params, report.macs == want_macs
        ok_params += p_ok
        ok_macs += m_ok
        complete += report.complete
        line = (f"{name:32s} params {'ok' if p_ok else 'DIFF'} {report.params:>11,} / {want_params:>11,}"
                f" (unused {report.unused_params:,})  macs {'ok' if m_ok else 'DIFF'} {report.macs:>15,} /"
                f" {want_macs:>15,}  complete {report.complete}")
        if report.unknown_ops:
            line += f" unknown {report.unknown_ops}"
        if not args.no_time:
            from fvcore.nn import FlopCountAnalysis

            ours = _median_s(lambda m=model, sp=spec: analyze_module(m, inputs=[torch.empty(s) for s in sp]))
            try:
                theirs = _median_s(lambda m=model, xs=inputs: FlopCountAnalysis(m, tuple(xs))
                                   .unsupported_ops_warnings(False).uncalled_modules_warnings(False).total())
            except Exception:  # fvcore fails on some models: reported as nan
                theirs = float("nan")
            faster += ours <= theirs
            line += f"  time {ours * 1e3:.0f} ms vs fvcore {theirs * 1e3:.0f} ms"
        if args.tools:
            views = report.to_dict()["views"]
            for tool, real in real_tools(model, inputs).items():
                mine = views.get(tool, {})
                same = all(mine.get(k) == v for k, v in real.items())
                marked = mine.get("exact", 1) == 0
                views_ok[tool] = views_ok.get(tool, 0) + (same or marked)
                views_equal[tool] = views_equal.get(tool, 0) + (same and not marked)
                views_seen[tool] = views_seen.get(tool, 0) + 1
                if not same:
                    line += (f"\n    {tool:18s} {'marked' if marked else 'SILENT'}: ours "
                             f"{ {k: mine.get(k) for k in real} } real {real}")
        print(line, flush=True)
        rows.append(name)
    n = len(rows)
    print(f"\nparams exact {ok_params}/{n}, MACs exact {ok_macs}/{n}, complete {complete}/{n}"
          + ("" if args.no_time else f", tracer at or below fvcore's time {faster}/{n}"))
    for tool, seen in views_seen.items():
        print(f"view {tool}: equal to the tool or marked inexact on {views_ok[tool]}/{seen} "
              f"(exact and equal on {views_equal.get(tool, 0)}, silently different on {seen - views_ok[tool]})")


if __name__ == "__main__":
    main()
