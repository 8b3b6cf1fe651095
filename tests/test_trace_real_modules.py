"""The tracer on the module patterns real zoos use (issue 13), each written here with torch alone and
checked against ``sum(p.numel())`` of the parameters its forward reads and a MAC count written in
the test: recurrent layers, ``nn.Transformer``, attention with and without the CPU fast path, tied
and shared weights, 1-D/3-D and transposed convolutions, a relative-position table, group norm,
weight standardization, an eval-mode aux head; the partial flag through the Python report, the
wire and the CLI; and ``cost-oracle cost --module``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from cost_engine import analyze_module
from cost_engine.formulas import UnknownOpError
from cost_oracle.client.types import CostResult
from cost_oracle.contract import convert


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# -- recurrent layers: counted whole, by formula ------------------------------------------------
def rnn_macs(m: nn.RNNBase, steps: int, batch: int) -> int:
    """Every weight matrix multiplies one vector per timestep and sequence."""
    return steps * batch * sum(p.numel() for name, p in m.named_parameters() if name.startswith("weight"))


@pytest.mark.parametrize("make, shape, steps, batch", [
    (lambda: nn.LSTM(16, 32, num_layers=2), (12, 3, 16), 12, 3),
    (lambda: nn.LSTM(16, 32, num_layers=2, bidirectional=True, batch_first=True), (3, 12, 16), 12, 3),
    (lambda: nn.LSTM(16, 32, proj_size=8), (12, 3, 16), 12, 3),
    (lambda: nn.GRU(16, 24, num_layers=3), (7, 2, 16), 7, 2),
    (lambda: nn.GRU(16, 24), (7, 16), 7, 1),  # unbatched
    (lambda: nn.RNN(16, 24, nonlinearity="relu", bias=False), (7, 2, 16), 7, 2),
])
def test_recurrent_layers_count_every_parameter_once_and_their_macs(make, shape, steps, batch) -> None:
    m = make()
    r = analyze_module(m, shape)
    assert r.params == n_params(m)  # not once per timestep
    assert r.macs == rnn_macs(m, steps, batch)
    assert r.complete and not r.unknown_ops
    expected_out = m(torch.randn(shape))[0].shape
    assert r.output_shape == tuple(expected_out)
    assert r.flops > 2 * r.macs  # the gates' pointwise work is counted too


# -- attention ------------------------------------------------------------------------------------
def mha_macs(e: int, heads: int, lq: int, lk: int, batch: int) -> int:
    """q, k, v and output projections plus the two attention products."""
    return batch * (lq * e * e + 2 * lk * e * e + lq * lk * e * 2 + lq * e * e)


@pytest.mark.parametrize("fast_path", [True, False])
def test_multihead_attention_counts_the_same_with_and_without_the_fast_path(fast_path: bool) -> None:
    m = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(fast_path)
    try:
        r = analyze_module(m, inputs=((2, 10, 32), (2, 10, 32), (2, 10, 32)))
    finally:
        torch.backends.mha.set_fastpath_enabled(before)
    assert r.params == n_params(m)  # in_proj_weight sliced into q, k, v: charged once, whole
    assert r.macs == mha_macs(32, 4, 10, 10, 2)
    assert r.complete


def test_scaled_dot_product_attention_is_one_op_with_its_own_formula() -> None:
    class Sdpa(nn.Module):
        def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return nn.functional.scaled_dot_product_attention(q, k, v)

    r = analyze_module(Sdpa(), inputs=((2, 4, 10, 8), (2, 4, 6, 8), (2, 4, 6, 16)))
    assert list(r.by_op_type()) == ["attention"]
    assert r.macs == 2 * 4 * 10 * 6 * (8 + 16)
    assert r.output_shape == (2, 4, 10, 16)


def transformer_macs(e: int, ff: int, enc: int, dec: int, s: int, t: int, batch: int) -> int:
    layer_ff = lambda n: 2 * n * e * ff  # noqa: E731 - two linears
    encoder = enc * (mha_macs(e, 0, s, s, 1) + layer_ff(s))
    decoder = dec * (mha_macs(e, 0, t, t, 1) + mha_macs(e, 0, t, s, 1) + layer_ff(t))
    return batch * (encoder + decoder)


def test_nn_transformer_counts_exactly_including_cross_attentions_sliced_weights() -> None:
    m = nn.Transformer(d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=64).eval()
    r = analyze_module(m, inputs=((10, 2, 32), (7, 2, 32)))
    assert r.params == n_params(m)
    assert r.macs == transformer_macs(32, 64, 2, 1, 10, 7, 2)
    assert r.complete and r.output_shape == (7, 2, 32)


# -- shared, tied and derived parameters ------------------------------------------------------------
class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.out = nn.Linear(16, 100, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.emb(ids))


def test_a_tied_weight_is_counted_once() -> None:
    m = Tied()
    r = analyze_module(m, inputs=(torch.zeros(2, 5, dtype=torch.long),))
    assert r.params == n_params(m) == 1600
    assert r.macs == 2 * 5 * 16 * 100  # the embedding looks up, the linear multiplies
    assert r.by_op_type()["embedding"]["params"] + r.by_op_type()["linear"]["params"] == r.params


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv(x))


def test_a_module_called_twice_counts_its_parameters_once_and_its_macs_twice() -> None:
    r = analyze_module(Twice(), (1, 8, 8, 8))
    assert r.params == 8 * 8 * 9 + 8
    assert r.macs == 2 * (8 * 8 * 8 * 8 * 9)
    assert sum(c["params"] for c in r.by_module().values()) == r.params  # the breakdown agrees
    assert all(v["params"] == r.params for tool, v in r.to_dict()["views"].items() if "params" in v)


class StdConv(nn.Conv2d):
    """Weight standardization (BiT, NFNet): the conv reads a tensor computed from its weight."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = nn.functional.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                                     training=True, momentum=0.0, eps=1e-6).reshape_as(self.weight)
        return nn.functional.conv2d(x, w, self.bias, self.stride, self.padding)


def test_a_parameter_read_through_a_computation_still_counts() -> None:
    m = StdConv(3, 8, 3, padding=1)
    r = analyze_module(m, (1, 3, 8, 8))
    assert r.params == n_params(m)
    assert r.macs == 8 * 8 * 8 * 3 * 9


class Aux(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.aux = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y if not self.training else (y, self.aux(x))


def test_parameters_the_eval_forward_never_reads_are_reported_apart() -> None:
    r = analyze_module(Aux(), (2, 8))
    assert r.params == 8 * 8 + 8 and r.unused_params == 8 * 3 + 3
    assert r.to_dict()["unused_params"] == 27


class RelPos(nn.Module):
    """Swin's relative-position bias: a parameter table gathered by a buffer of indices."""

    def __init__(self, window: int = 4, heads: int = 2) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("index", torch.zeros(window ** 4, dtype=torch.long))
        self.window, self.heads = window, heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.window ** 2
        bias = self.table[self.index].view(n, n, self.heads).permute(2, 0, 1)
        return (x @ x.transpose(-1, -2)) + bias


def test_a_relative_position_table_is_counted_and_complete() -> None:
    m = RelPos()
    r = analyze_module(m, (1, 2, 16, 8))
    assert r.params == n_params(m) == 49 * 2
    assert r.macs == 2 * 16 * 16 * 8
    assert r.complete and not r.unknown_ops


# -- convolutions of any dimensionality, normalizations --------------------------------------------
@pytest.mark.parametrize("m, shape, macs", [
    (nn.Conv1d(3, 8, 3), (2, 3, 20), 2 * 8 * 18 * 3 * 3),
    (nn.Conv1d(4, 8, 3, groups=2), (3, 4, 20), 2 * 8 * 18 * 2 * 3 * 3 // 2),
    (nn.Conv3d(3, 8, 3, padding=1), (1, 3, 4, 6, 6), 8 * 4 * 6 * 6 * 3 * 27),
    (nn.ConvTranspose2d(8, 4, 2, stride=2), (1, 8, 8, 8), 8 * 8 * 8 * 4 * 4),  # every input element x C_out x taps
    (nn.ConvTranspose1d(6, 4, 3, stride=2, groups=2), (1, 6, 10), 6 * 10 * 2 * 3),
    (nn.ConvTranspose3d(4, 2, 2, stride=2), (1, 4, 2, 3, 3), 4 * 18 * 2 * 8),
])
def test_convolutions_of_any_dimension_and_their_transposes(m: nn.Module, shape: tuple, macs: int) -> None:
    r = analyze_module(m, shape)
    assert r.macs == macs and r.params == n_params(m) and r.complete
    assert r.output_shape == tuple(m(torch.randn(shape)).shape)


def test_group_and_instance_norm_have_formulas() -> None:
    gn = analyze_module(nn.GroupNorm(4, 16), (2, 16, 8, 8))
    assert list(gn.by_op_type()) == ["group_norm"] and gn.params == 32
    assert gn.flops == (5 + 2) * 2 * 16 * 8 * 8
    inn = analyze_module(nn.InstanceNorm2d(16), (2, 16, 8, 8))
    assert list(inn.by_op_type()) == ["instance_norm"] and inn.flops == 5 * 2 * 16 * 8 * 8


def test_upsampling_by_mode() -> None:
    class Up(nn.Module):
        def __init__(self, mode: str) -> None:
            super().__init__()
            self.mode = mode

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.interpolate(x, scale_factor=2, mode=self.mode)

    out = 1 * 3 * 8 * 8
    assert analyze_module(Up("nearest"), (1, 3, 4, 4)).flops == 0
    assert analyze_module(Up("bilinear"), (1, 3, 4, 4)).flops == 7 * out
    assert analyze_module(Up("bicubic"), (1, 3, 4, 4)).flops == 31 * out


def test_a_module_holding_a_cache_made_with_autograd_on_is_traced() -> None:
    class Cached(nn.Module):  # LeViT keeps its gathered attention biases like this
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.cache = {"cpu": self.lin.weight * 2}  # not a leaf: torch refuses to deep-copy it

    class Wrap(Cached):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x)

    assert analyze_module(Wrap(), (2, 4)).macs == 2 * 4 * 4


# -- the partial flag ---------------------------------------------------------------------------------
class Contraction(nn.Module):
    """An op without a formula that reads a weight: its MACs are unknown."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(self.w, x)


def test_an_unknown_op_that_may_carry_macs_makes_the_report_a_lower_bound() -> None:
    r = analyze_module(Contraction(), (8, 3))
    assert not r.complete and r.unknown_ops and all(k.startswith("aten.") for k in r.unknown_ops)
    assert r.params == 64  # still counted
    d = r.to_dict()
    assert d["complete"] is False
    # through the wire and the client's result type
    msg = convert.report_to_proto({**d, "cache_key": "k"})
    assert msg.HasField("complete") and msg.complete is False
    back = convert.report_to_dict(msg)
    assert back["complete"] is False and CostResult.from_dict(back).complete is False
    with pytest.raises(UnknownOpError):
        analyze_module(Contraction(), (8, 3), strict=True)
    # a spec report is complete, and a message without the field reads as complete
    from cost_engine import analyze

    spec = analyze("mobilenet_v2").to_dict()
    assert spec["complete"] is True and convert.report_to_proto(spec).complete is True
    msg.ClearField("complete")
    assert convert.report_to_dict(msg)["complete"] is True


def test_a_shape_preserving_unknown_op_leaves_the_report_complete() -> None:
    class Odd(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.logcumsumexp(x, 1)

    r = analyze_module(Odd(), (2, 8, 4))
    assert r.complete and r.unknown_ops == {"aten.logcumsumexp": 1}


def test_bad_inputs_name_the_field() -> None:
    from cost_engine.spec import SpecError

    with pytest.raises(SpecError, match="exactly one"):
        analyze_module(nn.Linear(2, 2))
    with pytest.raises(SpecError, match=r"inputs\[1\]"):
        analyze_module(nn.Linear(2, 2), inputs=((2, 2), (0, 2)))
    with pytest.raises(SpecError, match="inputs: Linear cannot run"):
        analyze_module(nn.Linear(2, 2), inputs=((2, 3),))


# -- the CLI: cost --module ---------------------------------------------------------------------------
MODELS = textwrap.dedent('''
    import torch
    from torch import nn

    class Contraction(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(8, 8))
        def forward(self, x):
            return torch.linalg.solve(self.w, x)

    def tiny():
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))

    net = tiny()
    not_a_module = 3
''')


def cli(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cost_oracle.client.cli", "cost", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={**__import__("os").environ,
                                                       "PYTHONPATH": str(Path(__file__).resolve().parents[1])})


def test_cli_counts_a_users_module_from_a_factory(tmp_path: Path) -> None:
    (tmp_path / "mymodels.py").write_text(MODELS)
    out = cli(tmp_path, "--module", "mymodels:tiny", "--resolution", "32", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    sys.path.insert(0, str(tmp_path))
    try:
        import mymodels

        want = analyze_module(mymodels.tiny(), (1, 3, 32, 32)).to_dict()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mymodels", None)
    assert {k: d[k] for k in ("macs", "params", "flops", "complete")} == {k: want[k] for k in
                                                                           ("macs", "params", "flops", "complete")}
    assert d["candidate"] == "mymodels:tiny"
    inst = cli(tmp_path, "--module", "mymodels:net", "--input-shape", "2,3,16,16")
    assert inst.returncode == 0 and "2x3x16x16" in inst.stdout


def test_cli_warns_when_the_totals_are_a_lower_bound(tmp_path: Path) -> None:
    (tmp_path / "mymodels.py").write_text(MODELS)
    out = cli(tmp_path, "--module", "mymodels:Contraction", "--input-shape", "8,3")
    assert out.returncode == 0, out.stderr
    assert "WARNING: the totals are a lower bound" in out.stdout
    strict = cli(tmp_path, "--module", "mymodels:Contraction", "--input-shape", "8,3", "--strict")
    assert strict.returncode == 2 and "--strict:" in strict.stderr and "has no cost formula" in strict.stderr


@pytest.mark.parametrize("argv, message", [
    (("--module", "mymodels"), "must be MODULE:FACTORY"),
    (("--module", "nope:x"), "cannot import 'nope'"),
    (("--module", "mymodels:missing"), "has no attribute 'missing'"),
    (("--module", "mymodels:not_a_module"), "is a int, not an nn.Module"),
    (("--module", "mymodels:tiny", "--input-shape", "1,a"), "--input-shape: input 0"),
    (("--module", "mymodels:tiny", "--input-shape", "1,3:float8"), "dtype must be one of"),
    (("--module", "mymodels:tiny", "--server", "localhost:1"), "cannot be sent to --server"),
    (("--module", "mymodels:tiny", "--input-shape", "1,3"), "inputs: Sequential cannot run"),
    (("mobilenet_v2", "--strict"), "--strict: applies to --module only"),
])
def test_cli_module_errors_name_the_flag(tmp_path: Path, argv: tuple, message: str) -> None:
    (tmp_path / "mymodels.py").write_text(MODELS)
    out = cli(tmp_path, *argv)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr and "Traceback" not in out.stderr


def test_softmax_variants_and_low_level_attention_kernels_are_counted() -> None:
    class Low(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            p = torch.ops.aten._safe_softmax(q @ q.transpose(-1, -2), -1)
            out = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, q, q)[0]
            return torch.log_softmax(p, -1) + out.sum()

    r = analyze_module(Low(), (2, 4, 6, 8))
    kinds = r.by_op_type()
    assert kinds["softmax"]["ops"] == 1 and kinds["log_softmax"]["ops"] == 1 and kinds["attention"]["ops"] == 1
    assert r.macs == 2 * 4 * 6 * 6 * 8 + 2 * 4 * 6 * 6 * (8 + 8)
    assert r.complete and not r.unknown_ops


def test_an_lstm_is_traced_without_running_its_timesteps() -> None:
    """Counted by formula at the layer: the op list is one op, however long the sequence."""
    from cost_engine import trace_ops

    ops = trace_ops(nn.LSTM(8, 16, num_layers=2), (500, 1, 8))
    assert [op.kind for op in ops] == ["lstm"]
