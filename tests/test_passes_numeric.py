"""Each pass on small aten graphs: the rewritten graph computes what the original did
(fp32, fp16, bf16; odd sizes and eps), and look-alikes that must not match are left."""

import pytest
import torch
import torch.fx as fx
from torch._inductor.decomposition import select_decomp_table
from torch.fx.experimental.proxy_tensor import make_fx

from vllm_npu_graph.passes import noop, qkv_rope, rms_norm, swiglu

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


def _noop_chain(x):
    aten = torch.ops.aten
    a = aten.view(x, list(x.shape))
    b = aten.slice(a, 1, 0, 9223372036854775807)
    c = torch.ops.prims.convert_element_type(b, x.dtype)
    d = aten.permute(c, [0, 1])
    e = aten.expand(d, list(x.shape))
    return e * 2, aten.view(x, list(x.shape))  # the second output must stay (an output)


@pytest.mark.parametrize("dtype", DTYPES)
def test_noop_removes_identity_views_slices_casts(dtype):
    x = torch.randn(3, 7).to(dtype)
    gm = aten_graph(_noop_chain, x)
    assert rewrite_and_compare(gm, noop.run, (x,), dtype) == 5
    assert [n.target for n in gm.graph.nodes if n.op == "call_function"] == [torch.ops.aten.mul.Tensor, torch.ops.aten.view.default]


def test_noop_leaves_real_reshapes_slices_casts():
    aten = torch.ops.aten
    x = torch.randn(4, 6)
    gm = aten_graph(lambda t: (aten.view(t, [6, 4]) * 2, aten.slice(t, 1, 0, 3) * 2,
                               torch.ops.prims.convert_element_type(t, torch.float16) * 2, aten.permute(t, [1, 0]) * 2), x)
    assert rewrite_and_compare(gm, noop.run, (x,), torch.float32) == 0


def _rope(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def attention_inputs(hq, hkv, d, qk_norm, eps=1e-6, rot=None, k_positions=False, leak_norm=False):
    """The decoder's QKV split, QK norm and NeoX RoPE as vLLM's native code writes them."""
    rot = rot or d

    def fn(qkv, positions, cache, qw, kw):
        t = qkv.shape[0]
        q, k, v = qkv.split([hq * d, hkv * d, hkv * d], dim=-1)
        q, k = q.reshape(t, hq, d), k.reshape(t, hkv, d)
        if qk_norm:
            q, k = torch.ops.vllm_ir.rms_norm(q, qw, eps), torch.ops.vllm_ir.rms_norm(k, kw, eps)
        cos, sin = (c.unsqueeze(-2) for c in cache[positions].chunk(2, dim=-1))
        kcos, ksin = (c.unsqueeze(-2) for c in cache[positions.flip(0) if k_positions else positions].chunk(2, dim=-1))
        if rot == d:
            q_rot, k_rot = _rope(q, cos, sin), _rope(k, kcos, ksin)
        else:
            q_rot = torch.cat([_rope(q[..., :rot], cos, sin), q[..., rot:]], dim=-1)
            k_rot = torch.cat([_rope(k[..., :rot], kcos, ksin), k[..., rot:]], dim=-1)
        outs = (q_rot, k_rot, v.reshape(-1, hkv, d))
        return outs + (q,) if leak_norm else outs

    return fn


def rope_args(t, hq, hkv, d, dtype, rot=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    rot = rot or d
    freqs = torch.outer(torch.arange(64).float(), 1.0 / (10000 ** (torch.arange(0, rot, 2).float() / rot)))
    return (torch.randn(t, (hq + 2 * hkv) * d, generator=g).to(dtype), torch.randint(0, 64, (t,), generator=g),
            torch.cat([freqs.cos(), freqs.sin()], dim=-1).to(dtype),
            (1 + 0.1 * torch.randn(d, generator=g)).to(dtype), (1 + 0.1 * torch.randn(d, generator=g)).to(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hq, hkv, d, qk_norm, eps", [(4, 2, 32, False, 1e-6), (6, 2, 48, True, 1e-6), (3, 3, 64, True, 1e-5)])
def test_qkv_rope_rewrites_split_norm_rope(dtype, hq, hkv, d, qk_norm, eps):
    import vllm.ir.ops  # noqa: F401

    args = rope_args(5, hq, hkv, d, dtype)
    gm = aten_graph(attention_inputs(hq, hkv, d, qk_norm, eps), *args)
    if qk_norm:
        assert rms_norm.run(gm.graph) == 2  # as in the pipeline: rms_norm runs first
    assert rewrite_and_compare(gm, qkv_rope.run, args, dtype) == 1
    ops = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert torch.ops.npu_graph.qkv_rope.default in ops and torch.ops.aten.cat.default not in ops


@pytest.mark.parametrize("case", ["partial_rotary", "k_positions", "leak_norm"])
def test_qkv_rope_leaves_look_alikes(case):
    import vllm.ir.ops  # noqa: F401

    rot = 16 if case == "partial_rotary" else None
    args = rope_args(5, 4, 2, 32, torch.float32, rot=rot)
    fn = attention_inputs(4, 2, 32, True, rot=rot, k_positions=case == "k_positions", leak_norm=case == "leak_norm")
    gm = aten_graph(fn, *args)
    assert rewrite_and_compare(gm, qkv_rope.run, args, torch.float32) == 0
