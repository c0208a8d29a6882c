"""The quant fusion passes on small graphs of our ops as the W8A8 decoder has them: each
folds the per-token quantization into the RMSNorm / add + RMSNorm / SwiGLU before it, the
rewritten graph computes the same int8 rows, scales and residual bit for bit (reference
kernels), and look-alikes stay as they are."""

import pytest
import torch
import torch.fx as fx
from torch.fx.experimental.proxy_tensor import make_fx

from vllm_npu_graph.ops import fused, kernel_choice, quant  # noqa: F401  (registers the ops)
from vllm_npu_graph.passes import add_rms_norm_quant, enabled_passes, rms_norm_quant, swiglu_quant

ops = torch.ops.npu_graph


@pytest.fixture(autouse=True)
def reference_kernels():
    kernel_choice.configure(None)


def rewrite(fn, graph_pass, *args) -> tuple[int, fx.GraphModule]:
    """(matches, rewritten module); asserts it returns exactly what the original did."""
    gm = make_fx(fn)(*args)
    expected = gm(*args)
    count = graph_pass(gm.graph)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    for got, want in zip(gm(*args), expected):
        assert torch.equal(got, want)
    return count, gm


def targets(gm) -> set:
    return {n.target for n in gm.graph.nodes if n.op == "call_function"}


X, R, W = torch.randn(5, 96), torch.randn(5, 96), 1 + 0.1 * torch.randn(96)


def test_rms_norm_quant_folds_the_quantization_through_a_row_view():
    def layer(x, w):
        normed = ops.rms_norm(x, w, 1e-6)
        q, scale = ops.quant_per_token(normed.reshape(-1, 96))
        return q, scale

    count, gm = rewrite(layer, rms_norm_quant.run, X, W)
    assert count == 1
    assert ops.rms_norm_quant.default in targets(gm)
    assert not {ops.rms_norm.default, ops.quant_per_token.default} & targets(gm)


def test_add_rms_norm_quant_keeps_the_residual():
    def layer(x, residual, w):
        normed, summed = ops.add_rms_norm(x, residual, w, 1e-5)
        q, scale = ops.quant_per_token(normed)
        return q, scale, summed * 2

    count, gm = rewrite(layer, add_rms_norm_quant.run, X, R, W)
    assert count == 1 and ops.add_rms_norm_quant.default in targets(gm)
    assert not {ops.add_rms_norm.default, ops.quant_per_token.default} & targets(gm)


def test_swiglu_quant():
    def mlp(gate_up):
        return ops.quant_per_token(ops.swiglu(gate_up))

    count, gm = rewrite(mlp, swiglu_quant.run, torch.randn(3, 2 * 37))
    assert count == 1 and ops.swiglu_quant.default in targets(gm)
    assert not {ops.swiglu.default, ops.quant_per_token.default} & targets(gm)


@pytest.mark.parametrize("case", ["second reader", "not rows", "other op"])
def test_look_alikes_are_left(case):
    def second_reader(x, w):
        normed = ops.rms_norm(x, w, 1e-6)
        return (*ops.quant_per_token(normed), normed.sum())

    def not_rows(x, w):  # a 3-D norm: the fused op takes [tokens, features]
        normed = ops.rms_norm(x.reshape(5, 2, 48), w[:48], 1e-6)
        return ops.quant_per_token(normed.reshape(10, 48))

    def other_op(x, w):  # the quantization reads something else
        return ops.quant_per_token(ops.rms_norm(x, w, 1e-6) * 2)

    fn = {"second reader": second_reader, "not rows": not_rows, "other op": other_op}[case]
    count, gm = rewrite(fn, rms_norm_quant.run, X, W)
    assert count == 0 and ops.quant_per_token.default in targets(gm)


def test_the_quant_fusions_are_on_for_w8a8_models_only_and_switchable():
    def names(target, switches, quantized):
        return [p.NAME for p in enabled_passes(target, switches, quantized)]

    fusions = ["rms_norm", "add_rms_norm", "swiglu", "rms_norm_quant", "add_rms_norm_quant", "swiglu_quant"]
    assert names("host", {}, False) == ["attention", "linear"]
    assert names("host", {}, True) == [*fusions, "attention", "linear"]
    assert names("host", {"swiglu_quant": False}, True) == [*fusions[:5], "attention", "linear"]
    assert all(name in names("npu", {}, False) for name in fusions)
