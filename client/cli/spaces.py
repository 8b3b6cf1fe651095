"""Sweep spaces from command-line grids: ``--phi 0..3``, ``--alpha 1.1..1.3:0.05``, ``--n-div 2,4,8``.

Shared by ``sweep`` and ``plot``. A grid axis is a comma-separated list of values and ranges;
a range ``a..b`` steps by 1, ``a..b:s`` by ``s``, both ends inclusive. Float ranges are built
from an integer step count and rounded, so ``1.1..1.3:0.05`` is exactly 1.1, 1.15, 1.2, 1.25, 1.3
(never 1.2500000000000002, which would print badly and cache under another key).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any

from cost_oracle.client.cli._common import UsageError
from cost_oracle.contract.spaces import EfficientNetCompoundSpace, FasterNetSpace, MultiplierSpace

FAMILIES = ("efficientnet", "mobilenet_v2", "fasternet")
_ALIASES = {"mobilenet": "mobilenet_v2", "mobilenetv2": "mobilenet_v2", "efficientnet_compound": "efficientnet"}
MAX_RANGE_POINTS = 10_000


def parse_axis(text: str, kind: type = float, flag: str = "") -> tuple[Any, ...]:
    """``"0..3"`` -> (0, 1, 2, 3); ``"1.1..1.3:0.05"`` -> (1.1, 1.15, 1.2, 1.25, 1.3); ``"2,4,8"``."""
    values: list[Any] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise UsageError(flag, f"empty value in {text!r}")
        if ".." in part:
            values.extend(_range(part, kind, flag))
        else:
            values.append(_number(part, kind, flag))
    return tuple(dict.fromkeys(values))  # order kept, duplicates dropped


def _number(text: str, kind: type, flag: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(flag, f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise UsageError(flag, f"must be finite, got {text!r}")
    if kind is int:
        if not value.is_integer():
            raise UsageError(flag, f"must be an integer, got {text!r}")
        return int(value)
    return value


def _range(part: str, kind: type, flag: str) -> list[Any]:
    body, _, step_text = part.partition(":")
    lo_text, _, hi_text = body.partition("..")
    lo, hi = _number(lo_text, float, flag), _number(hi_text, float, flag)
    step = _number(step_text, float, flag) if step_text else 1.0
    if step <= 0:
        raise UsageError(flag, f"step must be > 0 in {part!r}")
    if hi < lo:
        raise UsageError(flag, f"range end is below its start in {part!r}")
    n = math.floor((hi - lo) / step + 1e-9) + 1
    if n > MAX_RANGE_POINTS:
        raise UsageError(flag, f"{part!r} has {n} points; at most {MAX_RANGE_POINTS}")
    out = [round(lo + i * step, 10) for i in range(n)]
    if kind is int:
        if any(not v.is_integer() for v in out):
            raise UsageError(flag, f"must step over integers, got {part!r}")
        return [int(v) for v in out]
    return out


def parse_depths(text: str, flag: str = "--depths") -> tuple[tuple[int, ...], ...]:
    """``"1-2-8-2,2-2-8-2"`` -> ((1, 2, 8, 2), (2, 2, 8, 2))."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        stages = part.split("-") if part else []
        if not stages:
            raise UsageError(flag, f"empty depths in {text!r}; write stages as 1-2-8-2")
        out.append(tuple(_number(s, int, flag) for s in stages))
    return tuple(out)


def add_space_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("family", nargs=None if required else "?", metavar="FAMILY",
                   help="efficientnet (compound grid with --phi/--alpha/--beta/--gamma, or multiplier grid with "
                        "--width/--depth/--resolution), mobilenet_v2 (--width/--resolution), fasternet "
                        "(--n-div/--mlp-ratio/--depths/--embed-dim/--act/--resolution)")
    g = p.add_argument_group("space (lists 'a,b,c' and ranges 'a..b' or 'a..b:step', ends inclusive)")
    g.add_argument("--phi", help="EfficientNet compound coefficients, e.g. 0..3")
    g.add_argument("--alpha", help="depth base(s), default 1.2")
    g.add_argument("--beta", help="width base(s), default 1.1")
    g.add_argument("--gamma", help="resolution base(s), default 1.15")
    g.add_argument("--target", type=float, default=None, help="alpha*beta^2*gamma^2 target (default 2)")
    g.add_argument("--tolerance", type=float, default=None, help="allowed |alpha*beta^2*gamma^2 - target| "
                                                                  "(default 0.1)")
    g.add_argument("--width", help="width multipliers, e.g. 0.5..1.4:0.1")
    g.add_argument("--depth", help="depth multipliers (efficientnet)")
    g.add_argument("--resolution", help="input resolutions, e.g. 160,192,224")
    g.add_argument("--resolution-multiplier", help="resolution multipliers of 224 (efficientnet, mobilenet_v2)")
    g.add_argument("--n-div", help="FasterNet partial ratio divisors, e.g. 2,4,8")
    g.add_argument("--mlp-ratio", help="FasterNet MLP ratios, e.g. 1,2,3")
    g.add_argument("--depths", help="FasterNet stage depths, e.g. 1-2-8-2,2-2-8-2")
    g.add_argument("--embed-dim", help="FasterNet embedding widths, e.g. 40,64")
    g.add_argument("--act", help="FasterNet activations, e.g. relu,gelu")


_COMPOUND = ("phi", "alpha", "beta", "gamma", "target", "tolerance")
_MULTIPLIER = ("width", "depth", "resolution", "resolution_multiplier")
_FASTERNET = ("n_div", "mlp_ratio", "depths", "embed_dim", "act", "resolution")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def space_from_args(args: argparse.Namespace) -> Any:
    """The sweep space the flags describe (server.sweeps dataclasses; validated by the oracle)."""

    family = _ALIASES.get(args.family, args.family)
    if family not in FAMILIES:
        raise UsageError("family", f"unknown sweep family {args.family!r}; choose from {', '.join(FAMILIES)}")
    given = {n for n in (*_COMPOUND, *_MULTIPLIER, *_FASTERNET) if getattr(args, n, None) is not None}

    def reject(allowed: tuple[str, ...], what: str) -> None:
        extra = sorted(given - set(allowed))
        if extra:
            raise UsageError(_flag(extra[0]), f"does not apply to {what}")

    if family == "fasternet":
        reject(_FASTERNET, "a fasternet sweep")
        kw: dict[str, Any] = {}
        for name, kind in (("n_div", int), ("mlp_ratio", float), ("embed_dim", int), ("resolution", int)):
            if getattr(args, name) is not None:
                kw[name] = parse_axis(getattr(args, name), kind, _flag(name))
        if args.depths is not None:
            kw["depths"] = parse_depths(args.depths)
        if args.act is not None:
            kw["act"] = tuple(a.strip() for a in args.act.split(",") if a.strip())
        return FasterNetSpace(**kw)
    compound = given & set(_COMPOUND)
    multiplier = given & set(_MULTIPLIER)
    if family == "efficientnet" and compound and multiplier:
        raise UsageError(_flag(sorted(multiplier)[0]),
                         "a compound grid (--phi/--alpha/--beta/--gamma) and a multiplier grid "
                         "(--width/--depth/--resolution) cannot be combined")
    if family == "efficientnet" and (compound or not multiplier):
        reject(_COMPOUND, "an efficientnet compound sweep")
        kw = {name: parse_axis(getattr(args, name), float, _flag(name))
              for name in ("phi", "alpha", "beta", "gamma") if getattr(args, name) is not None}
        kw.update({name: getattr(args, name) for name in ("target", "tolerance") if getattr(args, name) is not None})
        return EfficientNetCompoundSpace(**kw)
    reject(_MULTIPLIER, f"a {family} multiplier sweep")
    kw = {}
    for name, kind in (("width", float), ("depth", float), ("resolution", int), ("resolution_multiplier", float)):
        if getattr(args, name) is not None:
            kw[name] = parse_axis(getattr(args, name), kind, _flag(name))
    return MultiplierSpace(family=family, **kw)


def space_to_dict(space: Any) -> dict[str, Any]:
    """A space as plain JSON (recorded in a sweep's JSON output, so a plot knows what it shows)."""

    out: dict[str, Any] = {"kind": space.name}
    for f in dataclasses.fields(space):
        v = getattr(space, f.name)
        out[f.name] = [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
    return out
