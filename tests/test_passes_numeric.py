"""Each pass on small aten graphs: the rewritten graph computes what the original did
(fp32, fp16, bf16; odd sizes and eps), and look-alikes that must not match are left."""

import pytest
import torch
import torch.fx as fx
from torch._inductor.decomposition import select_decomp_table
from torch.fx.experimental.proxy_tensor import make_fx

from vllm_npu_graph.passes import rms_norm, swiglu

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


def aten_graph(fn, *args) -> fx.GraphModule:
    return make_fx(fn, decomposition_table=select_decomp_table())(*args)


def rewrite_and_compare(gm, graph_pass, args, dtype) -> int:
    expected = gm(*args)
    count = graph_pass(gm.graph)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    got = gm(*args)
    for a, b in zip(got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else (expected,)):
        torch.testing.assert_close(a.float(), b.float(), atol=TOL[dtype], rtol=TOL[dtype])
    return count


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inter", [64, 37])
def test_swiglu_rewrites_silu_mul(dtype, inter):
    x = torch.randn(5, 2 * inter).to(dtype)
    gm = aten_graph(lambda t: torch.nn.functional.silu(t[..., :inter]) * t[..., inter:], x)
    assert rewrite_and_compare(gm, swiglu.run, (x,), dtype) == 1
    assert any(n.target is torch.ops.npu_graph.swiglu.default for n in gm.graph.nodes)


def test_swiglu_leaves_look_alikes():
    x = torch.randn(4, 96)
    # halves of different widths (not a gate/up split)
    gm = aten_graph(lambda t: torch.nn.functional.silu(t[..., :32]) * t[..., 32:64], x)
    assert rewrite_and_compare(gm, swiglu.run, (x,), torch.float32) == 0
    # the activation has another consumer
    def two_users(t):
        act = torch.nn.functional.silu(t[..., :48])
        return act * t[..., 48:], act.sum()
    gm = aten_graph(two_users, x)
    assert rewrite_and_compare(gm, swiglu.run, (x,), torch.float32) == 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden, eps", [(64, 1e-6), (100, 1e-5)])
def test_rms_norm_rewrites_vllm_ir_op(dtype, hidden, eps):
    import vllm.ir.ops  # noqa: F401

    x, w = torch.randn(3, hidden).to(dtype), (1 + 0.1 * torch.randn(hidden)).to(dtype)
    gm = aten_graph(lambda a, b: torch.ops.vllm_ir.rms_norm(a, b, eps), x, w)
    assert rewrite_and_compare(gm, rms_norm.run, (x, w), dtype) == 1


def test_rms_norm_leaves_partial_variance_and_missing_weight():
    import vllm.ir.ops  # noqa: F401

    x, w = torch.randn(3, 64), torch.randn(64)
    gm = aten_graph(lambda a, b: torch.ops.vllm_ir.rms_norm(a, b, 1e-6, 32), x, w)
    assert rewrite_and_compare(gm, rms_norm.run, (x, w), torch.float32) == 0
    gm = aten_graph(lambda a: torch.ops.vllm_ir.rms_norm(a, None, 1e-6), x)
    assert rewrite_and_compare(gm, rms_norm.run, (x,), torch.float32) == 0
