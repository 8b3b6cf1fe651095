"""Adds up an op list: totals, breakdowns, liveness peak and the fused memory-access view.

The same function summarizes an expanded block and a traced module, so the two paths can only
disagree through their op lists, never through their arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from math import prod

from cost_engine.formulas import ACTIVATION_FLOPS, ACTIVATION_OPS, OpCost, UnknownOpError, op_cost, unknown_op_cost
from cost_engine.ops import Op, numel

#: ops that a fused conv/linear + BN + activation kernel absorbs after the producer
_FUSABLE_NORMS = frozenset({"batch_norm"})
_FUSABLE_ACTS = frozenset(ACTIVATION_FLOPS)


@dataclass(slots=True)
class Counts:
    """Additive counts; memory in elements."""

    ops: int = 0
    macs: int = 0
    flops: int = 0
    params: int = 0
    buffers: int = 0
    read: int = 0
    written: int = 0

    def add(self, other: Counts) -> None:
        self.ops += other.ops
        self.macs += other.macs
        self.flops += other.flops
        self.params += other.params
        self.buffers += other.buffers
        self.read += other.read
        self.written += other.written

    def to_dict(self, itemsize: int) -> dict[str, int]:
        return {
            "ops": self.ops,
            "macs": self.macs,
            "flops": self.flops,
            "params": self.params,
            "memory_access_bytes": (self.read + self.written) * itemsize,
        }


def _add(table: dict[str, Counts], key: str, cost: OpCost | Counts, ops: int = 1) -> None:
    c = table.get(key)
    if c is None:
        table[key] = Counts(ops, cost.macs, cost.flops, cost.params, cost.buffers, cost.read, cost.written)
    else:
        c.ops += ops
        c.macs += cost.macs
        c.flops += cost.flops
        c.params += cost.params
        c.buffers += cost.buffers
        c.read += cost.read
        c.written += cost.written


@dataclass(slots=True, eq=False)
class Summary:
    """The sums of one op list (a block or a traced module), or of merged block summaries.

    The totals are computed eagerly; ``by_module`` and ``views`` (what other tools would print)
    are derived on first access, from the op list kept by reference or from the merged parts.
    A search loop reads the totals of thousands of candidates and the breakdowns of few, and
    these two are the parts whose cost grows with every op.
    """

    totals: Counts = field(default_factory=Counts)
    fused_access: int = 0  # elements read + written with conv/linear+BN+act fused
    activations: int = 0  # output elements of conv and linear ops
    peak_elements: int = 0  # most activation elements alive at once
    by_kind: dict[str, Counts] = field(default_factory=dict)
    unknown: dict[str, int] = field(default_factory=dict)  # kind -> occurrences
    #: an unknown op may carry MACs (it reads a weight, or contracts or reduces its inputs): the
    #: totals are a lower bound (the report's ``complete`` is False)
    lower_bound: bool = False
    _ops: Sequence[Op] = ()
    _costs: Sequence[OpCost | None] = ()
    _parts: list[tuple[str, Summary]] = field(default_factory=list)  # (module prefix, block summary)
    _views: dict[str, dict[str, int]] | None = None
    _by_module: dict[str, Counts] | None = None

    @property
    def by_module(self) -> dict[str, Counts]:
        """Counts per innermost module path (the parts add up to the totals)."""
        if self._by_module is None:
            table: dict[str, Counts] = {}
            for op, cost in zip(self._ops, self._costs, strict=False):
                if cost is not None:
                    _add(table, op.module, cost)
            for prefix, part in self._parts:
                for module, c in part.by_module.items():
                    key = (f"{prefix}.{module}" if module else prefix) if prefix else module
                    if key in table:  # never in a network (block paths are distinct): sum into a new row
                        merged = Counts()
                        merged.add(table[key])
                        merged.add(c)
                        table[key] = merged
                    else:  # shared with the block's (memoized) summary: rows are never mutated
                        table[key] = c
            self._by_module = table
        return self._by_module

    @property
    def views(self) -> dict[str, dict[str, int]]:
        if self._views is None:
            from cost_engine.views import views_of  # views re-weight the same per-op records

            views = views_of(self._ops, self._costs or None)
            for _, part in self._parts:
                for tool, counts in part.views.items():
                    mine = views.setdefault(tool, {})
                    for k, v in counts.items():
                        mine[k] = mine.get(k, 0) + v
            self._views = views
        return self._views

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Summary):
            return NotImplemented
        return (self.totals, self.fused_access, self.activations, self.peak_elements, self.by_kind,
                self.by_module, self.unknown, self.lower_bound, self.views) == (
                other.totals, other.fused_access, other.activations, other.peak_elements, other.by_kind,
                other.by_module, other.unknown, other.lower_bound, other.views)

    def merge(self, other: Summary, prefix: str = "") -> None:
        """Add a later block's summary (its modules under ``prefix``); the peak of a chain of
        blocks is the max of their peaks."""
        self.totals.add(other.totals)
        self.fused_access += other.fused_access
        self.activations += other.activations
        self.peak_elements = max(self.peak_elements, other.peak_elements)
        for kind, c in other.by_kind.items():
            _add(self.by_kind, kind, c, c.ops)
        for kind, n in other.unknown.items():
            self.unknown[kind] = self.unknown.get(kind, 0) + n
        self.lower_bound = self.lower_bound or other.lower_bound
        self._parts.append((prefix, other))
        self._views = None
        self._by_module = None


def summarize(ops: list[Op] | tuple[Op, ...], input_ids: tuple[int, ...] = (1,)) -> Summary:
    """Sum an op list. ``input_ids`` are the tensors alive before the first op (the input)."""
    s = Summary(_ops=ops)
    costs: list[OpCost | None] = []
    by_kind = s.by_kind
    for op in ops:
        try:
            cost = op_cost(op)
        except UnknownOpError:  # listed as unknown; its params and traffic still count
            s.unknown[op.kind] = s.unknown.get(op.kind, 0) + 1
            s.lower_bound = s.lower_bound or may_carry_macs(op)
            cost = unknown_op_cost(op)
        costs.append(cost)
        _add(by_kind, op.kind, cost)
        if op.kind in ACTIVATION_OPS:
            s.activations += prod(op.outputs[0])
    for c in by_kind.values():  # totals from the (few) kinds rather than per op
        s.totals.add(c)
    s.peak_elements, uses = _liveness(ops, input_ids)
    s.fused_access = _fused_access(ops, costs, uses)
    s._costs = costs
    return s


def may_carry_macs(op: Op) -> bool:
    """Whether an op without a formula could hide multiply-accumulates: it reads a weight, or its
    output is not the broadcast of its inputs and is smaller than one of them (a contraction or a
    reduction). A pointwise, shape-preserving or data-moving op cannot."""
    if op.weights:
        return True
    if not op.inputs or not op.outputs:
        return False
    out = op.outputs[0]
    broadcast = _broadcast(op.inputs)
    return broadcast != tuple(out) and max(numel(s) for s in op.inputs) > numel(out)


def _broadcast(shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...] | None:
    rank = max(len(s) for s in shapes)
    dims = [1] * rank
    for s in shapes:
        for i, d in enumerate(s, start=rank - len(s)):
            if d != 1:
                if dims[i] not in (1, d):
                    return None
                dims[i] = d
    return tuple(dims)


def _fused_access(ops: list[Op] | tuple[Op, ...], costs: list[OpCost | None], uses: dict[int, int]) -> int:
    """Memory traffic when each conv/linear runs as one kernel with the BN and activation that
    follow it (BN folded into the weights and a bias): the intermediates never touch memory.
    ``uses`` counts the consumers of each tensor (an intermediate read twice cannot be fused away)."""
    total = 0
    i = 0
    n = len(ops)
    while i < n:
        op = ops[i]
        cost = costs[i]
        if cost is None:
            i += 1
            continue
        if op.kind not in ("conv2d", "linear"):
            total += cost.read + cost.written
            i += 1
            continue
        read = cost.read
        last = op
        j = i + 1
        folded_bn = False
        for allowed in (_FUSABLE_NORMS, _FUSABLE_ACTS):
            if j < n and ops[j].kind in allowed and _feeds(last, ops[j], uses):
                folded_bn = folded_bn or ops[j].kind in _FUSABLE_NORMS
                last = ops[j]
                j += 1
        if folded_bn and len(op.weights) == 1:
            read += op.outputs[0][1]  # the folded BN becomes a bias of C_out
        total += read + sum(numel(s) for s in last.outputs)
        i = j
    return total


def _feeds(producer: Op, consumer: Op, uses: dict[int, int]) -> bool:
    if not producer.output_ids or len(consumer.input_ids) != 1:
        return False
    out = producer.output_ids[0]
    return consumer.input_ids[0] == out and uses.get(out) == 1


def _liveness(ops: list[Op] | tuple[Op, ...], input_ids: tuple[int, ...]) -> tuple[int, dict[int, int]]:
    """Most activation elements alive at once, each storage freed right after its last use; and
    how many ops read each tensor.

    A storage's size is taken where it is first seen (a split part or a slice written in place
    is seen after its base). Runs once per new block: one flat pass.
    """
    uses: dict[int, int] = {}
    if not ops:
        return 0, uses
    size: dict[int, int] = {}
    born: dict[int, int] = {}
    last: dict[int, int] = {}
    for i in input_ids:
        born[i] = 0
        last[i] = 0
    for idx, op in enumerate(ops):
        for t, shape in zip(op.input_ids, op.inputs, strict=False):
            last[t] = idx
            uses[t] = uses.get(t, 0) + 1
            if t not in size:
                size[t] = prod(shape)
                born.setdefault(t, 0)
        for t, shape in zip(op.output_ids, op.outputs, strict=False):
            if t not in size:
                size[t] = prod(shape)
                born.setdefault(t, idx)
            last[t] = idx
    for t in ops[-1].output_ids:  # the block's result stays alive to the end
        last[t] = len(ops) - 1
    delta = [0] * (len(ops) + 1)
    for t, n in size.items():
        delta[born[t]] += n
        delta[last[t] + 1] -= n
    peak = alive = 0
    for d in delta:
        alive += d
        if alive > peak:
            peak = alive
    return peak, uses
