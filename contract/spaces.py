"""Parameterized search spaces the server expands into candidates (sweeps).

A controller that wants "every EfficientNet compound scaling within 5% of the FLOPs rule" or
"FasterNet over n_div x mlp_ratio x depths" should not have to build and ship thousands of
network specs: it sends the grid and the server generates the specs with the families' own
public functions (the same code as the built-in models, so a grid point at B0's coefficients is
B0 exactly). Every generated spec is validated; a point that cannot be built carries its own
error instead of failing the sweep. ``size`` is computed from the grid alone, before anything is
generated, so an oversize sweep is refused without work.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from cost_engine.spec.base import MAX_REPEATS, MAX_RESOLUTION, quote

#: space kind (the SweepRequest oneof name) -> families it can use
SWEEP_FAMILIES: tuple[str, ...] = ("efficientnet_compound", "efficientnet", "mobilenet_v2", "fasternet")
MULTIPLIER_FAMILIES: tuple[str, ...] = ("efficientnet", "mobilenet_v2")
#: a grid axis may list at most this many values (the product is bounded by the server limit)
MAX_AXIS = 10_000
BASE_RESOLUTION = 224
#: the largest value of each float axis: far beyond any network anyone builds, and small enough
#: that the arithmetic of a point (alpha**phi, 224 * multiplier, ...) stays finite and the spec
#: bounds, not a float overflow, are what refuses an oversized point
MAX_FACTOR = {"alpha": 8.0, "beta": 8.0, "gamma": 8.0, "width": 64.0, "depth": 64.0,
              "resolution_multiplier": MAX_RESOLUTION / BASE_RESOLUTION, "mlp_ratio": 64.0}
MAX_PHI = 32.0
#: alpha x beta x gamma combinations the compound constraint may be checked on (~0.3 s of Python)
MAX_COMPOUND_GRID = 1_000_000
MAX_TARGET = 1e6


@dataclass(frozen=True)
class EfficientNetCompoundSpace:
    """Every (alpha, beta, gamma) of the grid with ``|alpha * beta^2 * gamma^2 - target| <= tolerance``,
    at every ``phi``: width ``beta^phi``, depth ``alpha^phi``, resolution ``224 * gamma^phi``."""

    alpha: tuple[float, ...] = (1.2,)
    beta: tuple[float, ...] = (1.1,)
    gamma: tuple[float, ...] = (1.15,)
    phi: tuple[float, ...] = (0.0,)
    target: float = 2.0
    tolerance: float = 0.1

    name = "efficientnet_compound"

    def validate(self, path: str = name) -> list[tuple[str, str]]:
        errors = _axes(self, path, ("alpha", "beta", "gamma"))
        if not self.phi:
            errors.append((f"{path}.phi", "needs at least one value"))
        elif len(self.phi) > MAX_AXIS:
            errors.append((f"{path}.phi", f"at most {MAX_AXIS} values, got {len(self.phi)}"))
        else:
            errors.extend((f"{path}.phi[{i}]", f"must be a finite number in [0, {MAX_PHI:g}], got {quote(v, 40)}")
                          for i, v in enumerate(self.phi) if not _finite(v) or not 0 <= v <= MAX_PHI)
        for f in ("target", "tolerance"):
            v = getattr(self, f)
            if not _finite(v) or v < 0 or (f == "target" and v <= 0) or v > MAX_TARGET:
                errors.append((f"{path}.{f}", f"must be a finite number {'> 0' if f == 'target' else '>= 0'} "
                                              f"and <= {MAX_TARGET:g}, got {quote(v, 40)}"))
        return errors

    def triples(self) -> list[tuple[float, float, float]]:
        return [(a, b, g) for a in self.alpha for b in self.beta for g in self.gamma
                if abs(a * b * b * g * g - self.target) <= self.tolerance]

    def size(self) -> int:
        """Points after the constraint; the grid's own size (an upper bound) when the grid is over
        :data:`MAX_COMPOUND_GRID`, so that a cubic grid is refused before it is walked."""
        grid = len(self.alpha) * len(self.beta) * len(self.gamma)
        if grid > MAX_COMPOUND_GRID:
            return grid * len(self.phi)
        return len(self.triples()) * len(self.phi)

    def points(self) -> Iterator[tuple[dict[str, float], str, Any]]:
        from cost_engine.families.efficientnet import efficientnet_compound

        for a, b, g in self.triples():
            for phi in self.phi:
                params = {"phi": phi, "alpha": a, "beta": b, "gamma": g}
                # the multipliers and resolution the coordinates produce, beside them (not in the label)
                derived = {"width": b**phi, "depth": a**phi, "resolution": float(round(BASE_RESOLUTION * g**phi))}
                yield ({**params, **derived}, _label(params),
                       (lambda phi=phi, a=a, b=b, g=g: efficientnet_compound(phi, a, b, g)))


@dataclass(frozen=True)
class MultiplierSpace:
    """Width x depth x resolution grid over a family (``efficientnet`` or ``mobilenet_v2``)."""

    family: str = "efficientnet"
    width: tuple[float, ...] = ()
    depth: tuple[float, ...] = ()
    resolution: tuple[int, ...] = ()
    resolution_multiplier: tuple[float, ...] = ()

    name = "multipliers"

    def validate(self, path: str = name) -> list[tuple[str, str]]:
        errors = []
        if self.family not in MULTIPLIER_FAMILIES:
            errors.append((f"{path}.family", f"must be one of {', '.join(MULTIPLIER_FAMILIES)}; got {self.family!r}"))
        errors.extend(_axes(self, path, ("width", "depth", "resolution_multiplier"), allow_empty=True))
        errors.extend(_int_axis(self.resolution, f"{path}.resolution"))
        if self.resolution and self.resolution_multiplier:
            errors.append((f"{path}.resolution_multiplier", "give resolution or resolution_multiplier, not both"))
        if self.family == "mobilenet_v2" and any(d != 1.0 for d in self.depth):
            errors.append((f"{path}.depth", "mobilenet_v2 has no depth multiplier (leave it empty or 1.0)"))
        return errors

    def resolutions(self) -> tuple[int | None, ...]:
        if self.resolution:
            return tuple(self.resolution)
        if self.resolution_multiplier:
            return tuple(round(BASE_RESOLUTION * m) for m in self.resolution_multiplier)
        return (None,)

    def size(self) -> int:
        return max(len(self.width), 1) * max(len(self.depth), 1) * len(self.resolutions())

    def points(self) -> Iterator[tuple[dict[str, float], str, Any]]:
        widths = self.width or (1.0,)
        depths = self.depth or (1.0,)
        for w, d, r in itertools.product(widths, depths, self.resolutions()):
            res = r if r is not None else BASE_RESOLUTION
            if self.family == "efficientnet":
                from cost_engine.families.efficientnet import efficientnet

                params = {"width": w, "depth": d, "resolution": float(res)}
                yield params, _label(params), (lambda w=w, d=d, res=res: efficientnet(w, d, res))
            else:
                from cost_engine.families.mobilenet import mobilenet_v2

                params = {"width": w, "resolution": float(res)}
                yield params, _label(params), (lambda w=w, res=res: mobilenet_v2(w, res))


@dataclass(frozen=True)
class FasterNetSpace:
    """FasterNet grid (official semantics); an empty axis takes FasterNet-T0's value."""

    n_div: tuple[int, ...] = ()
    mlp_ratio: tuple[float, ...] = ()
    depths: tuple[tuple[int, ...], ...] = ()
    embed_dim: tuple[int, ...] = ()
    act: tuple[str, ...] = ()
    resolution: tuple[int, ...] = ()

    name = "fasternet"

    def validate(self, path: str = name) -> list[tuple[str, str]]:
        errors = _axes(self, path, ("mlp_ratio",), allow_empty=True)
        errors.extend(_int_axis(self.n_div, f"{path}.n_div"))
        errors.extend(_int_axis(self.embed_dim, f"{path}.embed_dim"))
        errors.extend(_int_axis(self.resolution, f"{path}.resolution"))
        if len(self.depths) > MAX_AXIS:
            errors.append((f"{path}.depths", f"at most {MAX_AXIS} values, got {len(self.depths)}"))
        for i, d in enumerate(self.depths):
            if not d:
                errors.append((f"{path}.depths[{i}].depths", "needs at least one stage"))
            errors.extend(_int_axis(d, f"{path}.depths[{i}].depths"))
            errors.extend((f"{path}.depths[{i}].depths[{j}]", f"must be at most {MAX_REPEATS} blocks, got {v}")
                          for j, v in enumerate(d) if isinstance(v, int) and v > MAX_REPEATS)
        if len(self.act) > MAX_AXIS:
            errors.append((f"{path}.act", f"at most {MAX_AXIS} values, got {len(self.act)}"))
        return errors

    def size(self) -> int:
        return math.prod(max(len(getattr(self, f.name)), 1) for f in fields(self))

    def points(self) -> Iterator[tuple[dict[str, float], str, Any]]:
        from cost_engine.families.fasternet import fasternet

        axes = (self.n_div or (4,), self.mlp_ratio or (2.0,), self.depths or ((1, 2, 8, 2),),
                self.embed_dim or (40,), self.act or ("gelu",), self.resolution or (BASE_RESOLUTION,))
        for n_div, mlp, depths, dim, act, res in itertools.product(*axes):
            params: dict[str, Any] = {"n_div": float(n_div), "mlp_ratio": mlp, "embed_dim": float(dim),
                                      "resolution": float(res)}
            params.update({f"depths[{i}]": float(d) for i, d in enumerate(depths)})
            label = (f"n_div={n_div} mlp_ratio={_fmt(mlp)} depths={'-'.join(map(str, depths))} embed_dim={dim} "
                     f"act={act} resolution={res}")
            yield params, label, (lambda n_div=n_div, mlp=mlp, depths=depths, dim=dim, act=act, res=res:
                                          fasternet(dim, tuple(depths), n_div=n_div, mlp_ratio=mlp, act=act,
                                                    resolution=res))


Space = EfficientNetCompoundSpace | MultiplierSpace | FasterNetSpace


def _label(params: dict[str, float]) -> str:
    return " ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _axes(space: Any, path: str, names: tuple[str, ...], allow_empty: bool = False) -> list[tuple[str, str]]:
    errors = []
    for name in names:
        values = getattr(space, name)
        if not values and not allow_empty:
            errors.append((f"{path}.{name}", "needs at least one value"))
        if len(values) > MAX_AXIS:
            errors.append((f"{path}.{name}", f"at most {MAX_AXIS} values, got {len(values)}"))
            continue
        hi = MAX_FACTOR[name]
        for i, v in enumerate(values):
            if not _finite(v) or not 0 < v <= hi:
                errors.append((f"{path}.{name}[{i}]", f"must be a finite number in (0, {hi:g}], got {quote(v, 40)}"))
    return errors



def _int_axis(values: tuple[int, ...], path: str) -> list[tuple[str, str]]:
    if len(values) > MAX_AXIS:
        return [(path, f"at most {MAX_AXIS} values, got {len(values)}")]
    return [(f"{path}[{i}]", f"must be an integer >= 1, got {v!r}") for i, v in enumerate(values)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1]
