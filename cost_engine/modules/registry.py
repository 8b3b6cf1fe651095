"""Spec -> torch ``nn.Module``: the module whose trace must equal the spec's expansion."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from cost_engine.ops import Shape
from cost_engine.spec.base import FieldError, Spec, SpecError

#: builder(spec, input_shape) -> nn.Module for one block kind
Builder = Callable[[Spec, Shape], nn.Module]
BUILDERS: dict[type[Spec], Builder] = {}
B = TypeVar("B", bound=Builder)

ACT_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "hardsigmoid": nn.Hardsigmoid,
    "hardswish": nn.Hardswish,
    "tanh": nn.Tanh,
    "none": nn.Identity,
}


def builder(spec_cls: type[Spec]) -> Callable[[B], B]:
    def deco(fn: B) -> B:
        if spec_cls in BUILDERS:
            raise ValueError(f"builder for {spec_cls.__name__} registered twice")
        BUILDERS[spec_cls] = fn
        return fn

    return deco


def block_module(spec_cls: type[Spec]) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Register an ``nn.Module`` class built as ``cls(spec, in_channels)`` (most block kinds)."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        builder(spec_cls)(lambda spec, input_shape: cls(spec, input_shape[1]))
        return cls

    return deco


def act_module(kind: str) -> nn.Module | None:
    """The activation module, or None for "none" (so no Identity appears in module paths)."""
    return None if kind == "none" else ACT_MODULES[kind]()


def build_block(spec: Spec, input_shape: Shape) -> nn.Module:
    try:
        fn = BUILDERS[type(spec)]
    except KeyError:
        raise SpecError([FieldError("kind", f"no builder for spec kind {spec.kind!r}")]) from None
    return fn(spec, input_shape)
