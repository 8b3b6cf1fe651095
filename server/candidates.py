"""Candidate preparation: a validated candidate with its memoized canonical form and cache keys
(kept in the oracle's bounded memos, ``memo.py``).

A :class:`Prepared` candidate memoizes its canonical spec and cache keys; the spec's canonical
JSON comes from ``cost_engine.keys.spec_json`` (assembled from each block's memoized text,
because the candidates of a search space share most of their blocks and hashing a new one
should cost only its own few fields). What a request asks about (the context, a standalone
block) is the contract's (``cost_oracle.contract.types``).
"""

from __future__ import annotations

from typing import Any

from cost_engine.keys import cache_key_of_json, spec_dict, spec_json
from cost_engine.report import COST_MODEL_VERSION
from cost_engine.spec.base import Spec
from cost_engine.spec.network import NetworkSpec
from cost_oracle.contract.errors import join_path, translate_path
from cost_oracle.contract.types import BlockCandidate, Context

__all__ = ["Prepared", "memo_key", "prepared_bytes"]



class Prepared:
    """A validated candidate: its resolved spec, canonical spec dict, and memoized cache keys."""

    __slots__ = ("_json", "_keys", "_spec_dict", "in_channels", "label", "name", "served", "spec", "wire")

    def __init__(self, spec: Spec, label: str, name: str | None = None, in_channels: int | None = None,
                 spec_dict: dict[str, Any] | None = None):
        self.spec = spec
        self.label = label
        self.name = name
        self.in_channels = in_channels
        self._spec_dict = spec_dict
        self._keys: dict[tuple[int, int, str], str] = {}
        #: ``spec_json(spec)``, when the caller already has it (a network read off the wire)
        self._json: str | None = None
        #: the candidate as a serialized ``costoracle.v1.Candidate``, when it came over the wire: what
        #: the analysis processes are sent (bytes cost nothing to ship; a pickled spec costs more
        #: than converting it again there)
        self.wire: bytes | None = None
        #: (context and detail, the encoded cache-hit result) a server last answered for this
        #: candidate: a batch of candidates all seen before is then answered by one lookup each
        self.served: tuple[Any, bytes] | None = None

    def know_json(self, text: str) -> Prepared:
        """Remember the spec's canonical JSON (``spec_json(self.spec)``, byte for byte) so that its
        keys need not assemble it again."""
        if self._json is None:
            self._json = text
        return self

    @property
    def spec_dict(self) -> dict[str, Any]:
        """The canonical plain form (equal to ``to_dict``), computed on first use. Read-only: the
        block dicts inside are shared with other candidates."""
        if self._spec_dict is None:
            self._spec_dict = spec_dict(self.spec)
        return self._spec_dict

    @property
    def is_block(self) -> bool:
        return not isinstance(self.spec, NetworkSpec)

    @property
    def candidate(self) -> Spec | str:
        """What the engine (and the latency layer) is given: the built-in name or the spec."""
        return self.name if self.name is not None else self.spec

    def resolution(self, ctx: Context) -> int | None:
        if ctx.resolution is not None:
            return ctx.resolution
        return self.spec.resolution if isinstance(self.spec, NetworkSpec) else None

    def cost_context(self, ctx: Context) -> dict[str, Any]:
        out: dict[str, Any] = {"batch_size": ctx.batch_size, "resolution": self.resolution(ctx), "dtype": ctx.dtype}
        if self.in_channels is not None:
            out["in_channels"] = self.in_channels
        return out

    def key(self, ctx: Context) -> str:
        r = self.resolution(ctx) or 0
        memo = (ctx.batch_size, r, ctx.dtype)
        k = self._keys.get(memo)
        if k is None:
            if self._json is None:
                self._json = spec_json(self.spec)
            k = cache_key_of_json(self._json, self.cost_context(ctx), COST_MODEL_VERSION)
            if len(self._keys) < 64:
                self._keys[memo] = k
        return k

    def proto_path(self, engine_path: str) -> str:
        """An engine field path (``stages[0][1].kernel_size``) in proto terms, relative to the candidate."""
        if self.name is not None:
            return "builtin"
        if self.is_block:
            return join_path(f"block.{self.spec.kind}", engine_path)
        return join_path("network", translate_path(engine_path, self.spec_dict))


def prepared_bytes(p: Prepared) -> int:
    """What a memoized :class:`Prepared` holds: its spec objects (~400 bytes per block, measured
    with tracemalloc on MBConv networks) and its canonical JSON when known."""
    spec = p.spec
    blocks = sum(len(stage) for stage in spec.stages) if isinstance(spec, NetworkSpec) else 1
    return 1024 + 400 * blocks + (len(p._json) if p._json else 0)


def memo_key(candidate: Any) -> Any:
    if isinstance(candidate, str):
        return ("name", candidate)
    if isinstance(candidate, (Spec, BlockCandidate)):
        try:
            return (type(candidate), candidate)
        except TypeError:
            return None
    return None


