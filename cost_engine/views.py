"""What other counting tools would print for the built module, re-derived from the op list.

Users arrive with a number from fvcore, thop, ptflops or torch's ``FlopCounterMode`` and ask
why ours differs; these views answer "the number that tool would print", to the unit, so the
difference is a convention and never a mystery. Each view is what that tool's installed source
(fvcore 0.1.5.post20221221, ultralytics-thop 2.2.3, ptflops 0.7.5 pytorch backend, torch 2.13
``torch.utils.flop_counter``) computes, written as a registry of small per-op functions exactly
like ``flop_counter.py``'s: ``RULES[tool][op kind](op, macs) -> int``. An op kind a tool has no rule
for counts 0, because that is what the tool does with it. These are the tools' conventions, not
ours: nothing here is a cost formula of the oracle (where a tool's count is a MAC count, the rule
takes the MAC count of the formula registry, :data:`cost_engine.formulas.FORMULAS`).

Every view is a sum over ops, so block summaries add up (the report memoizes per block).

Conventions the views rely on (what the built modules do; tests/test_views.py runs the real
tools on every registered block kind to hold the builders to them):

* Inference: the module is counted in eval mode. thop and ptflops call ``model.eval()``
  themselves; fvcore traces whatever mode it is given (its training-mode BatchNorm rule is
  ``5 * numel``), so ``fvcore`` here is ``FlopCountAnalysis(model.eval(), x).total()``.
* Module-hook tools (thop, ptflops) see an op through the class of the innermost module that ran
  it (``Op.module_type``); a module with a counting rule is a leaf that runs one counted op
  (``LayerNorm2d``'s permutes are views). thop resolves rules through the class MRO
  (``LayerNorm2d`` subclasses ``nn.LayerNorm``); ptflops needs the exact class.
* ptflops also patches Python callables: ``F.relu/relu6/gelu/silu``, ``F.*pool*``, ``F.softmax``,
  ``torch.matmul``, ``torch.add/mul`` and their ``Tensor`` methods. ``nn.ReLU``, ``nn.GELU``,
  ``nn.SiLU``, the pools and ``nn.Softmax`` call those functionals inside ``forward``, so they
  count twice there (hook + patch); ``nn.ReLU6`` calls ``F.hardtanh``, which is not patched.
  Functional ops in a block's ``forward`` are written as operators and methods: ``x + y``,
  ``x * s``, ``a @ b``, ``x.softmax(d)``, ``x.mean(d)`` (none patched), and activations, if any,
  as ``F.<name>``.
* Batch: counts are per batch like the rest of the report. fvcore, thop and FlopCounterMode run
  the real input and are linear in the batch. ptflops builds its own batch-1 input and divides
  its module-hook part by the batch it saw (but not its patched-functional part), so its printed
  number is per image: the ``ptflops`` view is ``batch_size *`` that print (exactly what it
  prints at batch 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod
from typing import Any

from cost_engine.formulas import CONV_TRANSPOSES, CONVS, FORMULAS, MAC_OPS, RNN_CELL_FLOPS, OpCost
from cost_engine.ops import Op, numel

#: rule(op, macs) -> the tool's count for the op; ``macs`` is the op's MAC count from the formula
#: registry (0 for an op that is not a conv/linear/matmul), computed once per op for all tools
Rule = Callable[[Op, int], int]

#: tool -> the name of its headline number (the tools' own word: fvcore and torch say "flops"
#: for what are MAC-based counts, thop and ptflops say "macs" for counts that include norms)
COUNT_KEYS: dict[str, str] = {
    "fvcore": "flops",
    "thop": "macs",
    "ptflops": "macs",
    "flop_counter_mode": "flops",
}
#: tools that also report a parameter count (fvcore's ``parameter_count(model)[""]``)
WITH_PARAMS: frozenset[str] = frozenset({"fvcore", "thop", "ptflops"})
#: of those, the ones that count every parameter of the model, read by the forward or not
COUNTS_UNUSED_PARAMS: frozenset[str] = frozenset({"fvcore", "ptflops"})
RULES: dict[str, dict[str, Rule]] = {tool: {} for tool in COUNT_KEYS}
_TOOLS = tuple(COUNT_KEYS)
#: op kind -> ((tool index, rule), ...): the registry turned inside out for one pass over the ops
_DISPATCH: dict[str, tuple[tuple[int, Rule], ...]] = {}


def rule(tool: str, *kinds: str) -> Callable[[Rule], Rule]:
    """Register what ``tool`` counts for ops of ``kinds``."""

    def register(fn: Rule) -> Rule:
        for kind in kinds:
            if kind in RULES[tool]:
                raise ValueError(f"{tool} rule for {kind!r} registered twice")
            RULES[tool][kind] = fn
        _DISPATCH.clear()
        return fn

    return register


def _dispatch() -> dict[str, tuple[tuple[int, Rule], ...]]:
    if not _DISPATCH:
        kinds = {kind for rules in RULES.values() for kind in rules}
        for kind in kinds:
            _DISPATCH[kind] = tuple((i, RULES[t][kind]) for i, t in enumerate(_TOOLS) if kind in RULES[t])
    return _DISPATCH


def views_of(ops: list[Op] | tuple[Op, ...], costs: Sequence[OpCost | None] | None = None
             ) -> dict[str, dict[str, int]]:
    """Each tool's numbers for this op list (a block or a whole network), per batch.

    One pass over the ops (this runs for every block the first time it is seen): an op kind no tool
    has a rule for costs a dictionary miss. ``costs`` (from :func:`~cost_engine.formulas.op_cost`,
    one per op, as ``summarize`` has them) saves recomputing MACs and params.
    """
    dispatch = _dispatch()
    totals = [0] * len(_TOOLS)
    params = 0
    for j, op in enumerate(ops):
        cost = costs[j] if costs is not None else None
        if cost is not None:
            params += cost.params
        else:
            for w in op.weights:
                params += numel(w)
        rules = dispatch.get(op.kind)
        if rules is None:
            continue
        macs = 0
        if op.kind in MAC_OPS:
            macs = cost.macs if cost is not None else FORMULAS[op.kind](op)[0]
        for i, fn in rules:
            totals[i] += fn(op, macs)
    out: dict[str, dict[str, int]] = {}
    for i, tool in enumerate(_TOOLS):
        view = {COUNT_KEYS[tool]: totals[i]}
        if tool in WITH_PARAMS:
            view["params"] = params
        out[tool] = view
    return out


# -- helpers -------------------------------------------------------------------------------------
def _in(op: Op) -> int:
    return prod(op.inputs[0])


def _out(op: Op) -> int:
    return prod(op.outputs[0])


def _affine(op: Op) -> bool:
    """A learnable affine, or one computed in the forward (the ``affine`` attr of a traced norm)."""
    return bool(op.weights) or bool(op.attrs and op.attr("affine"))


def _bias(op: Op) -> bool:
    return len(op.weights) > 1


# -- fvcore FlopCountAnalysis (jit trace; fvcore/nn/flop_count.py, jit_handles.py) ---------------
@rule("fvcore", "linear", "matmul", *CONVS, *CONV_TRANSPOSES)
def _fvcore_mac(op: Op, macs: int) -> int:
    """``conv_flop_jit`` (any ``aten::_convolution``, transposed ones by their input),
    ``linear_flop_jit``, ``matmul_flop_jit``: one "flop" per MAC, bias ignored."""
    return macs


@rule("fvcore", "batch_norm")
def _fvcore_batch_norm(op: Op, macs: int) -> int:
    """``batchnorm_flop_jit``: eval ``numel * (2 if affine else 1)``; with ``training=True``
    (weight standardization) its ``norm_flop_counter`` rule, ``numel * (5 if affine else 4)``."""
    if op.attrs and op.attr("training"):
        return _in(op) * (5 if _affine(op) else 4)
    return _in(op) * (2 if _affine(op) else 1)


@rule("fvcore", "layer_norm", "group_norm", "instance_norm")
def _fvcore_layer_norm(op: Op, macs: int) -> int:
    """``norm_flop_counter``: ``numel * (5 if affine else 4)``."""
    return _in(op) * (5 if _affine(op) else 4)


@rule("fvcore", "upsample")
def _fvcore_upsample(op: Op, macs: int) -> int:
    """``upsample_nearest2d``: one per output element, ``upsample_bilinear2d``: four; fvcore has
    no handle for the other modes and dimensions (0)."""
    if len(op.outputs[0]) != 4:
        return 0
    return {"nearest": 1, "bilinear": 4}.get(op.attr("mode"), 0) * _out(op)


@rule("fvcore", "adaptive_avg_pool2d")
def _fvcore_adaptive_avg_pool(op: Op, macs: int) -> int:
    """``elementwise_flop_counter(1, 0)``: one per input element."""
    return _in(op)


# -- torch.utils.flop_counter.FlopCounterMode (aten dispatch) ------------------------------------
@rule("flop_counter_mode", "linear", "matmul", *CONVS, *CONV_TRANSPOSES)
def _fcm_mac(op: Op, macs: int) -> int:
    """``conv_flop`` (transposed ones by their input), ``addmm_flop``/``mm_flop``, ``bmm_flop``:
    2 per MAC, bias ignored; nothing else. On CPU: the CPU flash attention kernel that
    ``scaled_dot_product_attention`` runs there has no formula in it (0)."""
    return 2 * macs


# -- ultralytics-thop profile (module hooks + a TorchFunctionMode; thop/profile.py) --------------
#: thop's counting rule of each module class our builders use, by name, resolved as thop does
#: through the MRO (``LayerNorm2d`` -> ``nn.LayerNorm``). Classes not listed have no rule (or a
#: zero one: ReLU, ReLU6, MaxPool2d, Identity, containers) and count 0 themselves.
THOP_MODULE_RULES: dict[str, str] = {
    "Conv2d": "conv",
    "Linear": "linear",
    "BatchNorm2d": "norm",
    "LayerNorm": "norm",
    "LayerNorm2d": "norm",
    "Softmax": "softmax",
    "AvgPool2d": "avg_pool",
    "AdaptiveAvgPool2d": "adaptive_avg_pool",
}


def _thop_rule(op: Op) -> str | None:
    return THOP_MODULE_RULES.get(op.module_type)


@rule("thop", "conv2d")
def _thop_conv(op: Op, macs: int) -> int:
    """``count_convNd``: out numel * (C_in / groups) * k_h * k_w, bias ignored; functional convs uncounted."""
    return macs if _thop_rule(op) == "conv" else 0


@rule("thop", "linear")
def _thop_linear(op: Op, macs: int) -> int:
    """``count_linear`` (in_features * out numel), or the functional counter's ``F.linear`` rule
    (out numel * in) outside any module with a rule of its own."""
    return macs if _thop_rule(op) in ("linear", None) else 0


@rule("thop", "matmul")
def _thop_matmul(op: Op, macs: int) -> int:
    """``_count_matmul`` (``@``, ``torch.matmul``, ``bmm``) outside any module with a rule: out numel * k."""
    return macs if _thop_rule(op) is None else 0


@rule("thop", "batch_norm", "layer_norm")
def _thop_norm(op: Op, macs: int) -> int:
    """``count_normalization``: ``2 * numel``, doubled when affine (eval; BN folds in inference)."""
    if _thop_rule(op) != "norm":
        return 0
    return 2 * _in(op) * (2 if _affine(op) else 1)


@rule("thop", "softmax")
def _thop_softmax(op: Op, macs: int) -> int:
    """``count_softmax`` for ``nn.Softmax``: rows * (exp + (n - 1) adds + div); functional softmax uncounted."""
    if _thop_rule(op) != "softmax":
        return 0
    shape = op.inputs[0]
    features = shape[op.attr("dim", len(shape) - 1)]
    rows = numel(shape) // features if features else 0
    return rows * (features + max(features - 1, 0) + features)


def _window_sum(size: int, out: int, kernel: int, stride: int, padding: int) -> int:
    """Input elements ``count_avgpool`` charges along one axis (``count_include_pad=True``, the nn default)."""
    lower, upper = -padding, size + padding
    return sum(max(min(i * stride - padding + kernel, upper) - max(i * stride - padding, lower), 0)
               for i in range(out))


@rule("thop", "avg_pool2d")
def _thop_avg_pool(op: Op, macs: int) -> int:
    """``count_avgpool``: one add per pooled input element (padding included), one divide per output."""
    if _thop_rule(op) != "avg_pool":
        return 0
    n, c, h, w = op.inputs[0]
    _, _, ho, wo = op.outputs[0]
    (kh, kw), (sh, sw), (ph, pw) = op.attr("kernel_size"), op.attr("stride"), op.attr("padding")
    windows = _window_sum(h, ho, kh, sh, ph) * _window_sum(w, wo, kw, sw, pw)
    return n * c * windows + _out(op)


@rule("thop", "adaptive_avg_pool2d")
def _thop_adaptive_avg_pool(op: Op, macs: int) -> int:
    """``count_adap_avgpool``: the windows ``AdaptiveAvgPool`` slices (output j spans
    ``[j*I//O, ceil((j+1)*I/O))``) summed per axis, times the untouched axes, plus one per output."""
    if _thop_rule(op) != "adaptive_avg_pool":
        return 0
    pooled = 1
    for i, o in zip(op.inputs[0], op.outputs[0], strict=True):
        pooled *= o if i == o else sum(-(-(j + 1) * i // o) - j * i // o for j in range(o))
    return pooled + _out(op)


# -- ptflops get_model_complexity_info, pytorch backend (ptflops/pytorch_engine.py, pytorch_ops.py)
#: leaf classes whose ``forward`` calls a functional that ptflops patches (so the op is counted by
#: the patch as well as by any hook): nn.ReLU -> F.relu, nn.GELU -> F.gelu, nn.SiLU -> F.silu,
#: pools -> F.*pool2d, nn.Softmax -> F.softmax. nn.ReLU6 calls F.hardtanh (not patched).
PTFLOPS_PATCHED_FORWARDS: frozenset[str] = frozenset(
    {"ReLU", "GELU", "SiLU", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Softmax"})
#: op kinds a block's own ``forward`` runs through a patched callable (the functional convention
#: of the module docstring: activations and pools as ``F.<name>``; operators, ``Tensor.softmax``
#: and ``Tensor.mean`` are not patched)
PTFLOPS_PATCHED_FUNCTIONALS: frozenset[str] = frozenset(
    {"relu", "relu6", "gelu", "silu", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"})
#: leaf classes of our builders that run one op ptflops knows (exact ``type`` match: no subclasses)
PTFLOPS_LEAF_TYPES: dict[str, str] = {
    "conv2d": "Conv2d", "linear": "Linear", "batch_norm": "BatchNorm2d", "layer_norm": "LayerNorm",
    "relu": "ReLU", "relu6": "ReLU6", "gelu": "GELU", "max_pool2d": "MaxPool2d", "avg_pool2d": "AvgPool2d",
    "adaptive_avg_pool2d": "AdaptiveAvgPool2d",
}
#: the ``nn`` leaf classes our builders use (an op run by any other class ran in a block's ``forward``)
_NN_LEAVES: frozenset[str] = frozenset({
    "Conv2d", "Linear", "BatchNorm2d", "LayerNorm", "LayerNorm2d", "ReLU", "ReLU6", "SiLU", "GELU", "Sigmoid",
    "Hardswish", "Hardsigmoid", "Tanh", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Softmax"})


def _pt_hooked(op: Op) -> bool:
    """The op was run by the leaf module class ptflops registers a forward hook for."""
    return PTFLOPS_LEAF_TYPES.get(op.kind) == op.module_type


def _pt_patched(op: Op) -> bool:
    """The op went through a functional ptflops patches (from a leaf's forward or a block's)."""
    if op.module_type in _NN_LEAVES:
        return op.module_type in PTFLOPS_PATCHED_FORWARDS
    return op.kind in PTFLOPS_PATCHED_FUNCTIONALS


@rule("ptflops", "conv2d")
def _pt_conv(op: Op, macs: int) -> int:
    """``conv_flops_counter_hook``: MACs plus one add per output element when there is a bias."""
    if not _pt_hooked(op):
        return 0
    return macs + (_out(op) if _bias(op) else 0)


@rule("ptflops", "linear")
def _pt_linear(op: Op, macs: int) -> int:
    """``linear_flops_counter_hook``: (in * out + out if bias) per row; ``F.linear`` is not patched."""
    if not _pt_hooked(op):
        return 0
    return macs + (_out(op) if _bias(op) else 0)


@rule("ptflops", "batch_norm")
def _pt_batch_norm(op: Op, macs: int) -> int:
    """``bn_flops_counter_hook``: ``numel``, doubled when the module has ``affine``."""
    return _in(op) * (2 if _affine(op) else 1) if _pt_hooked(op) else 0


@rule("ptflops", "layer_norm")
def _pt_layer_norm(op: Op, macs: int) -> int:
    """``bn_flops_counter_hook`` on ``nn.LayerNorm``: it has ``elementwise_affine``, not ``affine``,
    so ``numel`` once; a ``LayerNorm2d`` subclass is no ``nn.LayerNorm`` to ptflops (0)."""
    return _in(op) if _pt_hooked(op) else 0


@rule("ptflops", "relu", "relu6", "gelu", "silu")
def _pt_activation(op: Op, macs: int) -> int:
    """``relu_flops_counter_hook`` (output numel) and/or the patched functional (input numel)."""
    return (_out(op) if _pt_hooked(op) else 0) + (_in(op) if _pt_patched(op) else 0)


@rule("ptflops", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d")
def _pt_pool(op: Op, macs: int) -> int:
    """``pool_flops_counter_hook`` (input numel) and the patched ``F.*pool2d`` (input numel again)."""
    return (_in(op) if _pt_hooked(op) else 0) + (_in(op) if _pt_patched(op) else 0)


@rule("ptflops", "softmax")
def _pt_softmax(op: Op, macs: int) -> int:
    """Only the patched ``F.softmax`` (input numel), which ``nn.Softmax`` calls; ``Tensor.softmax`` is not."""
    return _in(op) if _pt_patched(op) else 0


# -- traced modules: which views can be trusted to the unit -----------------------------------------
#: module classes whose CPU fast path (one fused aten op on real tensors, which the meta trace never
#: takes) every tool counts differently from the ops it replaces
FAST_PATH_TYPES: frozenset[str] = frozenset({"MultiheadAttention", "TransformerEncoderLayer"})
#: torch.nn classes the module-hook views are validated on (the leaves above, and containers)
_MODELLED_NN: frozenset[str] = _NN_LEAVES | {"Sequential", "ModuleList", "ModuleDict", "Identity", "Dropout",
                                              "Flatten", "Module"}
#: op kinds a block's own code may run through a callable ptflops patches or not (``F.relu`` or
#: ``torch.relu``, ``torch.matmul`` or ``@``): the trace cannot tell which
_PTFLOPS_AMBIGUOUS: frozenset[str] = PTFLOPS_PATCHED_FUNCTIONALS | {"matmul", "add", "mul", "softmax", "upsample",
                                                                     "attention"}
#: aten ops fvcore and FlopCounterMode have a handle for: one we have no formula for is counted by them
_FVCORE_HANDLES: frozenset[str] = frozenset({"aten.grid_sampler", "aten.grid_sampler_2d"})
_FCM_HANDLES: frozenset[str] = frozenset({"aten.baddbmm", "aten._scaled_mm"})


def _class_kind(classes: set[type]) -> tuple[str, str | None]:
    """("torch", name) for a torch.nn class, ("project", None) for the oracle's own builders,
    ("user", the torch.nn base it derives from or None)."""
    if len(classes) != 1:
        return "user", None  # two classes share the name: which rule applies is per class
    cls = next(iter(classes))
    mod = cls.__module__
    if mod.startswith("torch.nn."):
        return "torch", cls.__name__
    if mod.startswith("cost_engine."):
        return "project", None
    base = next((c.__name__ for c in cls.__mro__[1:] if c.__module__.startswith("torch.nn.modules")
                 and c.__name__ not in ("Module",)), None)
    return "user", base


def view_caveats(ops: Sequence[Op], classes: dict[str, set[type]], decomposed: dict[str, int],
                 unknown: dict[str, int], complete: bool, unused_params: int, shared_params: bool
                 ) -> dict[str, str]:
    """tool -> why its view of a *traced* module may differ from what the tool prints (tools whose
    view is exact are absent). The views model the tools on modules built the way the oracle
    builds them; an arbitrary module can reach a tool's rules through paths its op list does not
    show (a subclass of a hooked class, a patched functional, a fused fast path), and where the
    trace cannot rule that out the view says so instead of printing a number that silently differs."""
    reasons: dict[str, list[str]] = {tool: [] for tool in COUNT_KEYS}

    def note(tools: Sequence[str], why: str) -> None:
        for t in tools:
            if why not in reasons[t]:
                reasons[t].append(why)

    if not complete:
        note(tuple(COUNT_KEYS), "an op without a formula may carry MACs (see unknown_ops)")
    if any(k in _FVCORE_HANDLES for k in unknown):
        handled = sorted(k for k in unknown if k in _FVCORE_HANDLES)
        note(("fvcore",), f"fvcore counts {handled}, which has no formula here")
    if any(k in _FCM_HANDLES for k in unknown):
        note(("flop_counter_mode",), "FlopCounterMode counts an op that has no formula here")
    if "aten.einsum" in decomposed:
        note(("fvcore", "thop", "ptflops"), "einsum: the tool counts the call by its own rule, the trace its products")
    if unused_params:
        note(("thop",), "parameters the forward never reads: thop's module hooks may count them")
    if shared_params:
        note(("thop", "ptflops"), "a parameter shared by two modules: the tool's per-module sums count it twice")
    kinds_by_type: dict[str, set[str]] = {}
    for op in ops:
        kinds_by_type.setdefault(op.module_type, set()).add(op.kind)
    for name, kinds in kinds_by_type.items():
        if name in FAST_PATH_TYPES:
            note(tuple(COUNT_KEYS), f"nn.{name} may take its fused CPU fast path on real tensors, which the tools "
                                    "count differently from its parts")
        if kinds & set(RNN_CELL_FLOPS):
            note(("thop", "ptflops", "flop_counter_mode"), "recurrent layers: the tool has its own rule (or counts "
                                                            "what the CPU kernel dispatches)")
        if "attention" in kinds:
            note(("thop", "ptflops"), "scaled_dot_product_attention: the tool has its own rule for it")
            note(("flop_counter_mode",), "scaled_dot_product_attention: FlopCounterMode counts it when the CPU "
                                         "runs the math kernel, not the flash one; which runs depends on the call")
        kind, base = _class_kind(classes.get(name, set())) if name else ("torch", "Module")
        if kind == "project":
            continue
        if kind == "torch":
            if base not in _MODELLED_NN:
                note(("thop", "ptflops"), f"nn.{base}: the tool's rule for it is not modelled here")
            continue
        if base is not None:
            note(("thop",), f"{name} derives from nn.{base}: thop counts it by that rule (through the MRO)")
            note(("ptflops",), f"{name} derives from nn.{base}: ptflops hooks exact types only")
        if name in PTFLOPS_LEAF_TYPES.values() or name in THOP_MODULE_RULES or name == "Attention":
            note(("thop", "ptflops"), f"a class named {name} that is not torch's")
        if kinds & _PTFLOPS_AMBIGUOUS:
            note(("ptflops",), f"{name} runs {sorted(kinds & _PTFLOPS_AMBIGUOUS)} in its own forward: ptflops "
                               "counts them only when called through the functionals it patches")
    return {tool: "; ".join(why) for tool, why in reasons.items() if why}


def mark_traced_views(views: dict[str, dict[str, Any]], unused_params: int, caveats: dict[str, str]) -> None:
    """Finish a traced module's views in place: the tools that count every parameter add the
    ones the forward never read; a view with a caveat says it is not exact, and why."""
    for tool in COUNTS_UNUSED_PARAMS:
        if unused_params and "params" in views.get(tool, {}):
            views[tool]["params"] += unused_params
    for tool, reason in caveats.items():
        views[tool].update(exact=False, reason=reason)
