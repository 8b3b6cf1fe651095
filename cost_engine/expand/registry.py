"""Which function expands which block kind, and the per-block memo that makes sweeps cheap."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from cost_engine.expand.emitter import Emitter, T
from cost_engine.memo import block_memo_entries
from cost_engine.ops import Op, Shape
from cost_engine.spec.base import FieldError, Spec, SpecError

#: expander(spec, emitter, x) -> y: appends the block's ops (relative module paths) and returns
#: its output tensor. It raises ShapeError for a spec that cannot run on this input shape.
Expander = Callable[[Spec, Emitter, T], T]
EXPANDERS: dict[type[Spec], Expander] = {}
#: the class name of each block's built nn.Module (the module_type of its functional ops)
BLOCK_MODULE_TYPES: dict[type[Spec], str] = {}
F = TypeVar("F", bound=Expander)


class ShapeError(ValueError):
    """A spec that is valid on its own but cannot run on the shape that reaches it."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def expander(spec_cls: type[Spec], module_type: str) -> Callable[[F], F]:
    def deco(fn: F) -> F:
        if spec_cls in EXPANDERS:
            raise ValueError(f"expander for {spec_cls.__name__} registered twice")
        EXPANDERS[spec_cls] = fn
        BLOCK_MODULE_TYPES[spec_cls] = module_type
        return fn

    return deco


def expand_into(spec: Spec, em: Emitter, x: T) -> T:
    try:
        fn = EXPANDERS[type(spec)]
    except KeyError:
        raise SpecError([FieldError("kind", f"no expander for spec kind {spec.kind!r}")]) from None
    return fn(spec, em, x)


@functools.lru_cache(maxsize=block_memo_entries())  # bounded in bytes: cost_engine/memo.py
def expand_block_layout(spec: Spec, input_shape: Shape, channels_last: bool = False
                        ) -> tuple[tuple[Op, ...], int, Shape, bool]:
    """:func:`expand_block` plus the memory order of the output.

    A map can leave a block channels-last (a LayerNorm2d's permute back) and stay so through
    convs; a later flatten of it then copies. So the input's memory order is part of a block's
    identity (and of the memo key), and the output's is handed to the next block.
    """
    em = Emitter()
    x = em.tensor(input_shape)
    if channels_last:
        x = em.view(x, input_shape, contiguous=False)
    with em.scope("", BLOCK_MODULE_TYPES.get(type(spec), "")):
        y = expand_into(spec, em, x)
    return tuple(em.ops), y.id, y.shape, not y.contiguous


def expand_block(spec: Spec, input_shape: Shape, channels_last: bool = False) -> tuple[tuple[Op, ...], int, Shape]:
    """The op list of one block run standalone on ``input_shape`` (module paths relative to the
    block, tensor ids local), its output tensor id (1 is the input) and shape. Memoized: the key
    is the frozen spec, the shape and the input's memory order.
    """
    return expand_block_layout(spec, input_shape, channels_last)[:3]
