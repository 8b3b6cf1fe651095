"""EfficientNet: B0 block arguments scaled in width, depth and resolution.

Two ways in, one network generator:

* coefficients ``(width, depth, resolution)`` — the official B0-B7 presets are a fixed table
  of these (from the reference implementation), *not* exactly ``beta^phi, alpha^phi, gamma^phi``;
* compound scaling ``(phi, alpha, beta, gamma)`` with the paper's defaults 1.2, 1.1, 1.15
  (``alpha * beta^2 * gamma^2 ~= 2``, so FLOPs grow about ``2^phi``).

Rounding is the official one: channels to the nearest multiple of 8 but never more than 10%
below the scaled value (:func:`round_filters`), repeats rounded up (:func:`round_repeats`),
resolution to an integer. The architecture is torchvision's ``efficientnet.py`` (stem 3x3 s2
conv-BN-SiLU, MBConv stages with SE on the block input, head 1x1 conv to
``round_filters(1280)``-BN-SiLU, global average pool, linear); dropout and drop-connect are
identities at inference and are not part of the spec.

Block arguments use the compact string form of the official code and timm
(``"r2_k3_s22_e6_i16_o24_se0.25"``), parsed by :func:`decode_block_args`, so a NAS space can
write its own stage table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cost_engine.families.registry import builtin
from cost_engine.spec.base import MAX_RESOLUTION, FieldError, SpecError, validate
from cost_engine.spec.blocks import ConvSpec, LinearSpec, MBConvSpec, PoolSpec
from cost_engine.spec.network import NetworkSpec

B0_BLOCKS_ARGS: tuple[str, ...] = (
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
)

#: name -> (width_coefficient, depth_coefficient, resolution): the official table
PRESETS: dict[str, tuple[float, float, int]] = {
    "efficientnet_b0": (1.0, 1.0, 224),
    "efficientnet_b1": (1.0, 1.1, 240),
    "efficientnet_b2": (1.1, 1.2, 260),
    "efficientnet_b3": (1.2, 1.4, 300),
    "efficientnet_b4": (1.4, 1.8, 380),
    "efficientnet_b5": (1.6, 2.2, 456),
    "efficientnet_b6": (1.8, 2.6, 528),
    "efficientnet_b7": (2.0, 3.1, 600),
}

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15
BASE_RESOLUTION = 224
#: bounds that keep a generated network affordable (B7 is width 2.0, depth 3.1, phi ~ 7)
MAX_WIDTH_COEFFICIENT = 8.0
MAX_DEPTH_COEFFICIENT = 8.0
MAX_PHI = 12.0


@dataclass(frozen=True)
class BlockArgs:
    """One B0 stage: ``repeats`` blocks, the first with ``stride`` and ``in -> out`` channels."""

    repeats: int
    kernel_size: int
    stride: int
    expand_ratio: float
    in_channels: int
    out_channels: int
    se_ratio: float
    skip: bool = True

    def encode(self) -> str:
        e = int(self.expand_ratio) if float(self.expand_ratio).is_integer() else self.expand_ratio
        out = (f"r{self.repeats}_k{self.kernel_size}_s{self.stride}{self.stride}_e{e}"
               f"_i{self.in_channels}_o{self.out_channels}")
        if self.se_ratio > 0:
            out += f"_se{self.se_ratio:g}"
        return out if self.skip else out + "_noskip"


_TOKEN = re.compile(r"^([a-z]+)(.*)$")
_KEYS = {"r": "repeats", "k": "kernel_size", "s": "stride", "e": "expand_ratio", "i": "in_channels",
         "o": "out_channels", "se": "se_ratio"}


def decode_block_args(text: str, path: str = "blocks_args") -> BlockArgs:
    """Parse ``"r2_k3_s22_e6_i16_o24_se0.25[_noskip]"``; errors name the bad token."""
    errors: list[FieldError] = []
    values: dict[str, float] = {}
    skip = True
    for token in text.split("_"):
        if token == "noskip":
            skip = False
            continue
        m = _TOKEN.match(token)
        key = m.group(1) if m else token
        if not m or key not in _KEYS:
            errors.append(FieldError(path, f"unknown token {token!r} in {text!r}"))
            continue
        name, raw = _KEYS[key], m.group(2)
        try:
            if name == "stride":  # "s22": one stride per spatial axis, both must agree
                if len(raw) != 2 or raw[0] != raw[1]:
                    raise ValueError
                values[name] = int(raw[0])
            elif name in ("expand_ratio", "se_ratio"):
                values[name] = float(raw)
            else:
                values[name] = int(raw)
        except ValueError:
            errors.append(FieldError(f"{path}.{name}", f"cannot parse {token!r}"))
    for name in ("repeats", "kernel_size", "stride", "expand_ratio", "in_channels", "out_channels"):
        if name not in values and not any(e.path == f"{path}.{name}" for e in errors):
            errors.append(FieldError(f"{path}.{name}", f"missing in {text!r}"))
    if errors:
        raise SpecError(errors)
    args = BlockArgs(int(values["repeats"]), int(values["kernel_size"]), int(values["stride"]),
                     values["expand_ratio"], int(values["in_channels"]), int(values["out_channels"]),
                     values.get("se_ratio", 0.0), skip)
    if args.repeats < 1:
        raise SpecError([FieldError(f"{path}.repeats", f"must be >= 1, got {args.repeats}")])
    return args


def round_filters(filters: float, width_coefficient: float, divisor: int = 8) -> int:
    """Official rule: scale, round to the nearest multiple of ``divisor`` (at least ``divisor``),
    and add one ``divisor`` back if that dropped more than 10% of the scaled width."""
    scaled = filters * width_coefficient
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def round_repeats(repeats: int, depth_coefficient: float) -> int:
    """Official rule: ``ceil(depth_coefficient * repeats)``."""
    return math.ceil(depth_coefficient * repeats)


@dataclass(frozen=True)
class EfficientNetConfig:
    """What generates one EfficientNet; ``blocks_args`` are B0's unless a search space says otherwise."""

    width_coefficient: float = 1.0
    depth_coefficient: float = 1.0
    resolution: int = BASE_RESOLUTION
    blocks_args: tuple[str, ...] = B0_BLOCKS_ARGS
    stem_channels: int = 32
    head_channels: int = 1280
    num_classes: int = 1000
    act: str = "silu"
    divisor: int = 8

    def errors(self) -> list[FieldError]:
        out = []
        if not 0 < self.width_coefficient <= MAX_WIDTH_COEFFICIENT:
            out.append(FieldError("width_coefficient",
                                  f"must be in (0, {MAX_WIDTH_COEFFICIENT}], got {self.width_coefficient}"))
        if not 0 < self.depth_coefficient <= MAX_DEPTH_COEFFICIENT:
            out.append(FieldError("depth_coefficient",
                                  f"must be in (0, {MAX_DEPTH_COEFFICIENT}], got {self.depth_coefficient}"))
        if not 32 <= self.resolution <= MAX_RESOLUTION:
            out.append(FieldError("resolution", f"must be in [32, {MAX_RESOLUTION}], got {self.resolution}"))
        if not self.blocks_args:
            out.append(FieldError("blocks_args", "needs at least one stage"))
        if self.divisor < 1:
            out.append(FieldError("divisor", f"must be >= 1, got {self.divisor}"))
        return out

    def _block(self, args: BlockArgs, out_channels: int, stride: int) -> MBConvSpec:
        return MBConvSpec(out_channels=out_channels, expand_ratio=args.expand_ratio, kernel_size=args.kernel_size,
                          stride=stride, se_ratio=args.se_ratio, act=self.act, skip=args.skip)

    def network(self) -> NetworkSpec:
        errors = self.errors()
        stages_args: list[BlockArgs] = []
        for i, text in enumerate(self.blocks_args):
            try:
                args = decode_block_args(text, f"blocks_args[{i}]")
            except SpecError as exc:
                errors.extend(exc.errors)
                continue
            stages_args.append(args)
            probe = self._block(args, args.out_channels, args.stride)  # the stage's fields, once per stage
            errors.extend(FieldError(f"blocks_args[{i}].{e.path}", e.reason) for e in validate(probe))
        if errors:
            raise SpecError(errors)
        w, d = self.width_coefficient, self.depth_coefficient
        stem = (ConvSpec(out_channels=round_filters(self.stem_channels, w, self.divisor), kernel_size=3, stride=2,
                         act=self.act),)
        stages = []
        for a in stages_args:
            out = round_filters(a.out_channels, w, self.divisor)
            blocks = [self._block(a, out, a.stride if i == 0 else 1) for i in range(round_repeats(a.repeats, d))]
            stages.append(tuple(blocks))
        head = (ConvSpec(out_channels=round_filters(self.head_channels, w, self.divisor), kernel_size=1,
                         act=self.act),
                PoolSpec(mode="global_avg", flatten=True),
                LinearSpec(out_features=self.num_classes))
        return checked(NetworkSpec(stem=stem, stages=tuple(stages), head=head, resolution=self.resolution))


def checked(network: NetworkSpec) -> NetworkSpec:
    """A generated network after the same validation a client's spec gets (bounds, cross-field
    rules), so a family asked for an oversize or impossible network fails with field paths."""
    errors = validate(network)
    if errors:
        raise SpecError(errors)
    return network


def compound_coefficients(phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA,
                          base_resolution: int = BASE_RESOLUTION) -> tuple[float, float, int]:
    """(width, depth, resolution) = (beta^phi, alpha^phi, round(base * gamma^phi))."""
    errors = []
    if not 0 <= phi <= MAX_PHI:
        errors.append(FieldError("phi", f"must be in [0, {MAX_PHI}], got {phi}"))
    for name, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not 1.0 <= v <= 4.0:
            errors.append(FieldError(name, f"must be in [1, 4], got {v}"))
    if errors:
        raise SpecError(errors)
    return beta**phi, alpha**phi, round(base_resolution * gamma**phi)


def efficientnet(width_coefficient: float = 1.0, depth_coefficient: float = 1.0, resolution: int = BASE_RESOLUTION,
                 **config: object) -> NetworkSpec:
    """The network at these coefficients (other :class:`EfficientNetConfig` fields as keywords)."""
    return EfficientNetConfig(width_coefficient, depth_coefficient, resolution, **config).network()  # type: ignore[arg-type]


def efficientnet_compound(phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA,
                          **config: object) -> NetworkSpec:
    """Compound scaling of B0 by ``phi``; raises :class:`SpecError` when the result exceeds the bounds."""
    width, depth, resolution = compound_coefficients(phi, alpha, beta, gamma)
    return efficientnet(width, depth, resolution, **config)


def _preset(name: str) -> None:
    width, depth, resolution = PRESETS[name]
    builtin(name)(lambda: efficientnet(width, depth, resolution))


for _name in PRESETS:
    _preset(_name)
