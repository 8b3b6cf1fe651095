"""A kernel unit rebuilt from its op records, so a worker can time it alone (issue #11).

A unit (``kernels.py``) is sent to a worker as *data*: its ops' kinds, shapes, weights, attrs and
tensor ids (:func:`unit_payload`), never code. :func:`build_unit` turns that back into a call
of the same ATen ops with random weights: the tensors the unit reads but does not produce become
random inputs made once, outside the timed call. Kinds outside :data:`BUILDABLE` are refused,
with the kind named, so a payload can never run anything the engine does not model.

A view inside a unit's data flow (the parts of a ``split``, a flattened pool output) is
recovered from the recorded shapes: same size is a reshape, a smaller one a slice.
"""

from __future__ import annotations

from typing import Any

from cost_engine.formulas import ACTIVATION_FLOPS
from cost_engine.latency.kernels import Kernel

BUILDABLE: frozenset[str] = frozenset({
    "conv2d", "linear", "matmul", "batch_norm", "layer_norm", "add", "sub", "mul", "div", "max_pool2d",
    "avg_pool2d", "adaptive_avg_pool2d", "mean", "softmax", "copy", "concat", *ACTIVATION_FLOPS,
})


class UnbuildableUnit(ValueError):
    """A payload names an op kind (or a shape) the builder does not run."""


def _shapes(shapes: tuple[tuple[int, ...], ...]) -> list[list[int]]:
    return [list(s) for s in shapes]


def unit_payload(kernel: Kernel) -> dict[str, Any]:
    """The unit as JSON data: what a measurement job carries."""
    return {"type": kernel.type, "ops": [
        {"kind": op.kind, "inputs": _shapes(op.inputs), "outputs": _shapes(op.outputs),
         "weights": _shapes(op.weights), "buffers": _shapes(op.buffers),
         "attrs": {k: list(v) if isinstance(v, tuple) else v for k, v in op.attrs},
         "input_ids": list(op.input_ids), "output_ids": list(op.output_ids)} for op in kernel.ops]}


def _fit(torch: Any, t: Any, shape: list[int]) -> Any:
    """``t`` seen as ``shape``: itself, a reshape of the same size, or a leading slice."""
    shape = list(shape)
    if list(t.shape) == shape:
        return t
    if t.numel() == _numel(shape):
        return t.reshape(shape)
    if t.dim() == len(shape) and all(a >= b for a, b in zip(t.shape, shape, strict=True)):
        return t[tuple(slice(0, s) for s in shape)]
    raise UnbuildableUnit(f"a tensor of shape {list(t.shape)} cannot be read as {shape}")


def _numel(shape: list[int]) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


def build_unit(payload: dict[str, Any], torch: Any, device: Any = "cpu", dtype: Any = None) -> Any:
    """A zero-argument call that runs the unit once (its inputs and weights made here)."""
    F = torch.nn.functional
    dtype = dtype or torch.float32
    ops = payload.get("ops")
    if not isinstance(ops, list) or not ops:
        raise UnbuildableUnit("a unit needs a non-empty 'ops' list")
    for op in ops:
        if op.get("kind") not in BUILDABLE:
            raise UnbuildableUnit(f"op kind {op.get('kind')!r} cannot be built")
    torch.manual_seed(0)

    def rand(shape: list[int]) -> Any:
        x = torch.randn([int(d) for d in shape], device=device, dtype=dtype)
        return torch.where(x == 0, torch.ones_like(x), x)

    produced = {i for op in ops for i in op["output_ids"]}
    external: dict[int, Any] = {}
    for op in ops:
        for i, shape in zip(op["input_ids"], op["inputs"], strict=False):
            if i not in produced and i not in external:
                external[i] = rand(shape)
    weights = [[rand(s) for s in op["weights"]] for op in ops]
    stats = [(torch.zeros(op["outputs"][0][1], device=device, dtype=dtype),
              torch.ones(op["outputs"][0][1], device=device, dtype=dtype)) if op["kind"] == "batch_norm" else None
             for op in ops]

    def call() -> Any:
        env = dict(external)
        y = None
        for op, w, st in zip(ops, weights, stats, strict=True):
            xs = [_fit(torch, env[i], s) for i, s in zip(op["input_ids"], op["inputs"], strict=False)]
            a = op["attrs"]
            k = op["kind"]
            if k == "conv2d":
                y = F.conv2d(xs[0], w[0], w[1] if len(w) > 1 else None, a["stride"], a["padding"], a["dilation"],
                             a["groups"])
            elif k == "linear":
                y = F.linear(xs[0], w[0], w[1] if len(w) > 1 else None)
            elif k == "matmul":
                y = torch.matmul(xs[0], xs[1])
            elif k == "batch_norm":
                y = F.batch_norm(xs[0], st[0], st[1], *(w or (None, None)), training=False)
            elif k == "layer_norm":
                y = F.layer_norm(xs[0], xs[0].shape[-1:], *(w or (None, None)))
            elif k in ("add", "sub", "mul", "div"):
                other = xs[1] if len(xs) > 1 else w[0]
                y = getattr(torch, k)(xs[0], other)
            elif k in ("max_pool2d", "avg_pool2d"):
                y = getattr(F, k)(xs[0], a["kernel_size"], a["stride"], a["padding"])
            elif k == "adaptive_avg_pool2d":
                y = F.adaptive_avg_pool2d(xs[0], a["output_size"])
            elif k == "mean":
                y = xs[0].mean(a["dims"], keepdim=a["keepdim"])
            elif k == "softmax":
                y = torch.softmax(xs[0], a["dim"])
            elif k == "copy":
                y = xs[0].clone(memory_format=torch.contiguous_format).reshape(op["outputs"][0])
            elif k == "concat":
                y = torch.cat(xs, a["dim"])
            else:  # an activation
                y = getattr(F, k)(xs[0])
            for i in op["output_ids"]:
                env[i] = y
        return y

    return call
