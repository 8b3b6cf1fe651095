"""EfficientNet compound scaling: how closely MACs follow ``(alpha * beta^2 * gamma^2)^phi``.

The paper's argument is that a conv's cost grows as ``depth * width^2 * resolution^2``, so
``d = alpha^phi, w = beta^phi, r = gamma^phi`` multiplies FLOPs by ``(alpha beta^2 gamma^2)^phi ~= 2^phi``.
The real network departs from that in two ways, and the bound asserted here accounts for both:

* the rounding rules: channels ``round_filters(c, w)`` (nearest multiple of 8, never 10% under
  ``c*w``), repeats ``ceil(d * n)``, integer resolution ``round(224 * gamma^phi)`` followed by a
  ceiling at each stride-2 layer (``ceil(r / 2^s)`` after ``s`` of them);
* the layers that do not scale as ``d w^2 r^2`` at all: depthwise convs and the stem are linear in
  width, the classifier is linear in width and spatially flat, SE convs run at 1x1, and the stem,
  head and the first block of every stage are not repeated by depth.

Derivation. Every conv/linear MAC count is ``C_out * (C_in / groups) * H_out * W_out * k^2``. In the
scaled network every channel count of an MBConv block is a fixed multiple of the rounded block
channels (hidden ``e * C``, SE squeeze ``C / 4``: exact because ``C`` is a multiple of 8), so each B0
op's counterpart costs its B0 MACs times a product of channel factors ``C/c`` and one area factor
``(H'/H)^2``, each confined to an interval by the rules above; the stage's repeated blocks add a
count factor ``(n' - 1)/(n - 1)`` with ``d*n <= n' <= d*n + 1`` (for a one-block B0 stage, the new
blocks are priced as a B0-width block of that stage, expanded by the engine). Summing
``B0 MACs x lower/upper factor`` over ops bounds the scaled network's MACs from both sides.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cost_engine import analyze
from cost_engine.expand import expand_block, network_blocks
from cost_engine.families.efficientnet import (
    ALPHA,
    BETA,
    GAMMA,
    PRESETS,
    compound_coefficients,
    decode_block_args,
    efficientnet,
    efficientnet_compound,
    round_filters,
    round_repeats,
)
from cost_engine.formulas import MAC_OPS, op_cost
from cost_engine.spec.blocks import MBConvSpec

REFERENCE = json.loads((Path(__file__).parent / "data" / "reference_models.json").read_text())
BASE = 224
B0 = efficientnet(1.0, 1.0, BASE)
B0_MACS = analyze(B0).macs
STAGES = [decode_block_args(a) for a in
          ("r1_k3_s11_e1_i32_o16_se0.25", "r2_k3_s22_e6_i16_o24_se0.25", "r2_k5_s22_e6_i24_o40_se0.25",
           "r3_k3_s22_e6_i40_o80_se0.25", "r3_k5_s11_e6_i80_o112_se0.25", "r4_k5_s22_e6_i112_o192_se0.25",
           "r1_k3_s11_e6_i192_o320_se0.25")]


def channel_factor(c: int, w: float) -> tuple[float, float]:
    """Bounds of ``round_filters(c, w) / c`` from the rule alone: within 4 of ``c*w`` (nearest
    multiple of 8) and at least ``0.9*c*w``; the 10% bump (only when ``c*w < 40``) lands below
    ``0.9*c*w + 8``; never below 8."""
    cw = c * w
    lo = max(0.9, 1 - 4 / cw) * w
    hi = (1 + 4 / cw) * w
    if cw < 40:
        hi = max(hi, (0.9 + 8 / cw) * w)
    return lo, max(hi, 8 / c)


def area_factor(h: int, g: float) -> tuple[float, float]:
    """Bounds of ``(H'/H)^2`` for a B0 map of side ``h = 224 / 2^s``: ``r' = round(224 g)`` is within
    0.5 of ``224 g`` and ``H' = ceil(r' / 2^s)`` within ``1 - 2^-s`` above ``r' / 2^s``."""
    s = round(math.log2(BASE / h))
    assert BASE / 2**s == h, f"B0 map side {h} is not 224 / 2^s"
    lo = (BASE * g - 0.5) / BASE
    hi = (BASE * g + 0.5 + 2**s - 1) / BASE
    return lo * lo, hi * hi


def op_factor(module: str, spec_out: int, block_in: int, out_h: int, w: float, g: float) -> tuple[float, float]:
    """(lower, upper) factor of one B0 op's MACs, from the channel roles of its module path."""
    f_in = channel_factor(block_in, w)
    f_out = channel_factor(spec_out, w)
    area = area_factor(out_h, g) if out_h > 1 else (1.0, 1.0)
    role = module.split(".")[-2] if module.endswith(".conv") else module.split(".")[-1]
    channels = {
        "expand": (f_in, f_in),  # C_in -> e*C_in
        "dw": (f_in,),  # depthwise: C_in/groups = 1
        "reduce": (f_in, f_in),  # e*C_in -> C_in/4
        "project": (f_in, f_out),  # e*C_in -> C_out
    }[role]
    lo = math.prod(f[0] for f in channels) * area[0]
    hi = math.prod(f[1] for f in channels) * area[1]
    return lo, hi


def bounds(phi: float) -> tuple[float, float]:
    """Lower and upper bound of MACs(phi) / MACs(B0) derived from the rules (module docstring)."""
    w, d, _ = compound_coefficients(phi)
    g = GAMMA**phi
    lo_total = hi_total = 0.0
    placed = network_blocks(B0, (1, 3, BASE, BASE))
    for block in placed:
        head, *rest = block.module.split(".")
        for op in block.ops:
            if op.kind not in MAC_OPS:
                continue
            macs = op_cost(op).macs
            out_h = op.outputs[0][2] if len(op.outputs[0]) == 4 else 1
            if head == "stem":  # 3 -> C(32), stride 2, once
                f = channel_factor(32, w)
                a = area_factor(out_h, g)
                lo, hi = f[0] * a[0], f[1] * a[1]
            elif head == "head" and op.kind == "conv2d":  # C(320) -> C(1280) at 7x7, once
                a = area_factor(out_h, g)
                lo = channel_factor(320, w)[0] * channel_factor(1280, w)[0] * a[0]
                hi = channel_factor(320, w)[1] * channel_factor(1280, w)[1] * a[1]
            elif head == "head":  # linear C(1280) -> 1000
                lo, hi = channel_factor(1280, w)
            else:
                s, i = int(rest[0]), int(rest[1])
                stage = STAGES[s]
                block_in = block.input_shape[1]
                lo, hi = op_factor(op.module, stage.out_channels, block_in, out_h, w, g)
                if i > 0:  # one of n - 1 repeated blocks, n' - 1 of them at phi
                    n = stage.repeats
                    lo *= (d * n - 1) / (n - 1)
                    hi *= d * n / (n - 1)
            lo_total += macs * lo
            hi_total += macs * hi
    # one-block B0 stages gain ceil(d) - 1 blocks with no B0 counterpart: price them as a B0-width
    # repeated block of that stage (its ops scale like any repeated block's)
    for s, stage in enumerate(STAGES):
        if stage.repeats != 1:
            continue
        block = next(b for b in placed if b.module == f"stages.{s}.0")
        spec = MBConvSpec(out_channels=stage.out_channels, expand_ratio=stage.expand_ratio,
                          kernel_size=stage.kernel_size, stride=1, se_ratio=stage.se_ratio)
        ops, _, _ = expand_block(spec, block.output_shape)
        for op in ops:
            if op.kind in MAC_OPS:
                out_h = op.outputs[0][2]
                lo, hi = op_factor(op.module, stage.out_channels, stage.out_channels, out_h, w, g)
                lo_total += op_cost(op).macs * lo * (d - 1)
                hi_total += op_cost(op).macs * hi * d
    return lo_total / B0_MACS, hi_total / B0_MACS


def test_channel_factor_bounds_hold_for_the_rounding_rule() -> None:
    """The premise of the bound: round_filters stays inside channel_factor for every B0-sized channel count."""
    for c in range(8, 2049, 4):
        for w100 in range(100, 401, 3):
            w = w100 / 100
            lo, hi = channel_factor(c, w)
            assert lo * c - 1e-9 <= round_filters(c, w) <= hi * c + 1e-9, (c, w)
            assert round_filters(c, w) % 8 == 0


def test_round_repeats_is_a_ceiling() -> None:
    for n in range(1, 6):
        for d100 in range(100, 400, 7):
            d = d100 / 100
            assert d * n <= round_repeats(n, d) < d * n + 1 + 1e-9


def test_compound_scaling_follows_two_to_the_phi_within_the_derived_bound() -> None:
    target_base = ALPHA * BETA**2 * GAMMA**2
    rows = []
    for phi in range(1, 8):
        w, d, r = compound_coefficients(phi)
        macs = analyze(efficientnet_compound(phi)).macs
        ratio = macs / B0_MACS
        target = target_base**phi
        lo, hi = bounds(phi)
        rows.append((phi, w, d, r, macs, ratio, target, ratio / target, lo / target, hi / target))
        assert lo <= ratio <= hi, f"phi={phi}: ratio {ratio:.3f} outside the derived [{lo:.3f}, {hi:.3f}]"
        # and the bound is informative: it excludes being off by a factor of two either way
        assert lo / target > 0.5 and hi / target < 2.0, (phi, lo / target, hi / target)
    print(f"\nalpha*beta^2*gamma^2 = {target_base:.4f} (2^phi when exactly 2); B0 MACs {B0_MACS}")
    print(" phi  width  depth  res        MACs   ratio  (abg)^phi  2^phi  ratio/target  bound/target")
    for phi, w, d, r, macs, ratio, target, rel, lo, hi in rows:
        print(f"{phi:4d}  {w:5.3f}  {d:5.3f}  {r:3d}  {macs:11d}  {ratio:6.2f}  {target:9.2f}  {2**phi:5d}"
              f"  {rel:12.3f}  [{lo:.3f}, {hi:.3f}]")


def test_compound_scaling_is_monotone_in_phi() -> None:
    macs = [analyze(efficientnet_compound(phi)).macs for phi in range(0, 8)]
    assert macs == sorted(macs) and len(set(macs)) == len(macs)
    assert macs[0] == B0_MACS


@pytest.mark.parametrize("phi", [0.5, 1.0, 2.5])
def test_compound_coefficients_are_the_papers_powers(phi: float) -> None:
    w, d, r = compound_coefficients(phi)
    assert w == pytest.approx(BETA**phi) and d == pytest.approx(ALPHA**phi)
    assert r == round(224 * GAMMA**phi)


def test_presets_are_the_official_table_not_powers_of_phi() -> None:
    """B0-B7 use the fixed (width, depth, resolution) table of models.json; it differs from
    (beta^phi, alpha^phi, gamma^phi) for every phi, which is why the presets are a table."""
    for model in REFERENCE["models"]:
        if model["family"] != "EfficientNet":
            continue
        cfg = model["config"]
        assert PRESETS[model["name"]] == (cfg["width_coefficient"], cfg["depth_coefficient"], cfg["resolution"])
    assert PRESETS["efficientnet_b7"] != tuple(compound_coefficients(7))
