"""Each pass on small aten graphs: the rewritten graph computes what the original did
(fp32, fp16, bf16; odd sizes and eps), and look-alikes that must not match are left."""

import pytest
import torch
import torch.fx as fx
from torch._inductor.decomposition import select_decomp_table
from torch.fx.experimental.proxy_tensor import make_fx

from vllm_npu_graph.passes import add_rms_norm, attention, noop, qkv_rope, rms_norm, rope_kv_write, swiglu

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
    for a, b in zip(
        got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else (expected,)
    ):
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
    assert [n.target for n in gm.graph.nodes if n.op == "call_function"] == [
        torch.ops.aten.mul.Tensor,
        torch.ops.aten.view.default,
    ]


def test_noop_leaves_real_reshapes_slices_casts():
    aten = torch.ops.aten
    x = torch.randn(4, 6)
    gm = aten_graph(
        lambda t: (
            aten.view(t, [6, 4]) * 2,
            aten.slice(t, 1, 0, 3) * 2,
            torch.ops.prims.convert_element_type(t, torch.float16) * 2,
            aten.permute(t, [1, 0]) * 2,
        ),
        x,
    )
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
    return (
        torch.randn(t, (hq + 2 * hkv) * d, generator=g).to(dtype),
        torch.randint(0, 64, (t,), generator=g),
        torch.cat([freqs.cos(), freqs.sin()], dim=-1).to(dtype),
        (1 + 0.1 * torch.randn(d, generator=g)).to(dtype),
        (1 + 0.1 * torch.randn(d, generator=g)).to(dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "hq, hkv, d, qk_norm, eps", [(4, 2, 32, False, 1e-6), (6, 2, 48, True, 1e-6), (3, 3, 64, True, 1e-5)]
)
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


def _graph_with(build):
    """A hand-built FX graph (these passes rewrite vLLM ops that need a live engine to
    run; their numerics are covered end to end in test_passes_engine.py)."""
    import vllm.model_executor.layers.attention.attention  # noqa: F401

    from vllm_npu_graph.ops import attention, fused  # noqa: F401

    graph = fx.Graph()

    def placeholder(name, val):
        node = graph.placeholder(name)
        node.meta["val"] = val
        return node

    build(graph, placeholder)
    return graph


def _targets(graph):
    return [n.target for n in graph.nodes if n.op == "call_function"]


@pytest.mark.parametrize("same_rope", [True, False])
def test_rope_kv_write_folds_the_cache_update_of_its_own_keys(same_rope):
    import operator

    def build(g, placeholder):
        qkv, pos, cache, layer = (
            placeholder(n, v)
            for n, v in [
                ("qkv", torch.empty(3, 128)),
                ("pos", torch.zeros(3)),
                ("cache", torch.empty(8, 32)),
                ("layer", None),
            ]
        )
        ropes = [
            g.call_function(torch.ops.npu_graph.qkv_rope.default, (qkv, pos, cache, 2, 1, 32, None, None, 1e-6))
            for _ in range(2)
        ]
        q, k, v = (g.call_function(operator.getitem, (ropes[0], i)) for i in range(3))
        other_v = g.call_function(operator.getitem, (ropes[1], 2))
        dep = g.call_function(torch.ops.vllm.unified_kv_cache_update.default, (k, v if same_rope else other_v, layer))
        g.output((q, dep, g.call_function(operator.getitem, (ropes[1], 0))))

    graph = _graph_with(build)
    assert rope_kv_write.run(graph) == (1 if same_rope else 0)
    targets = _targets(graph)
    assert (torch.ops.npu_graph.qkv_rope_kv_write.default in targets) == same_rope
    assert (torch.ops.vllm.unified_kv_cache_update.default in targets) != same_rope


@pytest.mark.parametrize("case", ["plain", "output_scale", "buffer_read"])
def test_attention_lowers_unified_attention_with_output(case):
    import operator

    def build(g, placeholder):
        q, k, v, dep, scale, layer = (
            placeholder(n, val)
            for n, val in [
                ("q", torch.empty(3, 4, 32)),
                ("k", torch.empty(3, 2, 32)),
                ("v", torch.empty(3, 2, 32)),
                ("dep", torch.empty(0)),
                ("scale", torch.ones(())),
                ("layer", None),
            ]
        )
        buffer = g.call_function(torch.ops.aten.empty.memory_format, ([3, 128],), {"dtype": torch.float32})
        buffer.meta["val"] = torch.empty(3, 128)
        node = g.call_function(
            torch.ops.higher_order.auto_functionalized_v2,
            (torch.ops.vllm.unified_attention_with_output.default,),
            {
                "query": q,
                "key": k,
                "value": v,
                "layer_name": layer,
                "output_scale": scale if case == "output_scale" else None,
                "output_block_scale": None,
                "kv_cache_dummy_dep": dep,
                "_output_base_index": 0,
                "_all_bases": [buffer],
            },
        )
        out = g.call_function(operator.getitem, (node, 1))
        g.output((out, buffer) if case == "buffer_read" else (out,))

    graph = _graph_with(build)
    lowered = case == "plain"
    assert attention.run(graph) == int(lowered)
    assert (torch.ops.npu_graph.attention.default in _targets(graph)) == lowered


@pytest.mark.parametrize("case", ["pair", "other_layer", "shared_write"])
def test_host_lowering_fuses_each_layers_kv_write_with_its_attention(case):
    """Our attention op whose ordering token is its own layer's KV write (and that write's
    only user) becomes one host op; anything else keeps the pair."""
    from vllm_npu_graph.targets import host_attention

    def build(g, placeholder):
        q, k, v, layer, other = (
            placeholder(n, val)
            for n, val in [
                ("q", torch.empty(3, 4, 32)),
                ("k", torch.empty(3, 2, 32)),
                ("v", torch.empty(3, 2, 32)),
                ("layer", None),
                ("other", None),
            ]
        )
        write = g.call_function(
            torch.ops.vllm.unified_kv_cache_update.default, (k, v, other if case == "other_layer" else layer)
        )
        attn = g.call_function(torch.ops.npu_graph.attention.default, (q, write, layer))
        g.output((attn, write) if case == "shared_write" else (attn,))

    graph = _graph_with(build)
    fused = case == "pair"
    assert host_attention.lower(graph) == int(fused)
    targets = _targets(graph)
    assert (targets == [torch.ops.npu_graph_host.attention.default]) == fused
    assert (torch.ops.vllm.unified_kv_cache_update.default in targets) != fused


def _add_rms_norm_graph(eps, read_base=False, variance_size=None) -> fx.GraphModule:
    """vLLM's in-place fused_add_rms_norm as functionalization leaves it in the graph."""
    import operator

    import vllm.ir.ops  # noqa: F401

    graph = fx.Graph()
    x, r, w = (graph.placeholder(n) for n in ("x", "r", "w"))
    node = graph.call_function(
        torch.ops.higher_order.auto_functionalized_v2,
        (torch.ops.vllm_ir.fused_add_rms_norm.maybe_inplace,),
        {
            "weight": w,
            "epsilon": eps,
            "variance_size": variance_size,
            "_x_base_index": 0,
            "_x_residual_base_index": 1,
            "_all_bases": [x, r],
        },
    )
    outs = [graph.call_function(operator.getitem, (node, i)) for i in ((0, 1, 2) if read_base else (0, 1))]
    graph.output(tuple(outs))
    return fx.GraphModule(torch.nn.Module(), graph)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden, eps", [(64, 1e-6), (100, 1e-5)])
def test_add_rms_norm_rewrites_the_functionalized_in_place_op(dtype, hidden, eps):
    g = torch.Generator().manual_seed(5)
    args = (
        torch.randn(3, hidden, generator=g).to(dtype),
        torch.randn(3, hidden, generator=g).to(dtype),
        (1 + 0.1 * torch.randn(hidden, generator=g)).to(dtype),
    )
    gm = _add_rms_norm_graph(eps)
    assert rewrite_and_compare(gm, add_rms_norm.run, args, dtype) == 1
    assert torch.ops.npu_graph.add_rms_norm.default in _targets(gm.graph)


@pytest.mark.parametrize("case", ["reads_mutated_base", "partial_variance"])
def test_add_rms_norm_leaves_look_alikes(case):
    args = (torch.randn(3, 64), torch.randn(3, 64), torch.rand(64) + 0.5)
    gm = _add_rms_norm_graph(
        1e-6, read_base=case == "reads_mutated_base", variance_size=32 if case == "partial_variance" else None
    )
    assert rewrite_and_compare(gm, add_rms_norm.run, args, torch.float32) == 0
