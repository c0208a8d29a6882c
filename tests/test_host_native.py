"""The host target's native ops (vLLM's CPU build: C++ paged attention, packed oneDNN
GEMM) against our references, and the linear pass that routes model weights to them."""

import math

import pytest
import torch
from helpers.attention_batches import build_batch

from vllm_npu_graph.frozen_values import no_host_sync
from vllm_npu_graph.kernels import attention_reference as ref
from vllm_npu_graph.targets import host_native


def native_cache_like(seq_lens, block_table, keys, values, num_blocks, hkv, d, bs):
    """The same tokens written by the native op into a head-major cache."""
    kv = torch.zeros(num_blocks, hkv, bs, 2 * d)
    for r, s in enumerate(seq_lens):
        if s:
            pos = torch.arange(s)
            slots = block_table[r, pos // bs].long() * bs + pos % bs
            host_native.write_kv_cache(keys[r], values[r], kv, torch.cat([slots, torch.tensor([-1])]))
    return kv


@pytest.mark.parametrize(
    "seq_lens, query_lens, hq, hkv, d, bs",
    [
        ([1, 16, 17, 40, 0], [1, 1, 1, 1, 0], 9, 3, 64, 16),  # decode, a padded request
        ([19, 1, 40, 33], [19, 1, 9, 1], 4, 1, 64, 16),  # prefill, chunked prefill, decode mixed
        ([300, 5], [1, 1], 8, 2, 128, 32),  # long context, 32-token blocks
        ([4, 17, 40, 0], [4, 4, 4, 0], 8, 2, 64, 16),  # a speculative step: token + 3 drafts each
    ],
)
def test_native_attention_equals_the_reference(seq_lens, query_lens, hq, hkv, d, bs):
    kv_ref, bt, keys, values, q, qsl = build_batch(seq_lens, query_lens, hq, hkv, d, bs, torch.float32)
    kv = native_cache_like(seq_lens, bt, keys, values, kv_ref.shape[0], hkv, d, bs)
    qsl, lens = torch.tensor(qsl, dtype=torch.int32), torch.tensor(seq_lens, dtype=torch.int32)
    expected = ref.paged_attention(q, kv_ref, qsl, lens, bt, d**-0.5)
    padded = torch.cat([q, torch.randn(3, hq, d)])  # rows of no request
    with no_host_sync():  # lengths are read inside the op only
        got = host_native.paged_attention(padded, kv, qsl, lens, bt, d**-0.5, None, 1, 0)
    torch.testing.assert_close(got[: q.shape[0]], expected, atol=1e-5, rtol=1e-5)
    assert got[q.shape[0] :].abs().max() == 0


@pytest.mark.parametrize(
    "seq_lens, query_lens, hkv, d, bs, window",
    [
        ([1, 16, 17, 40], [1, 1, 1, 1], 3, 64, 16, -1),  # decode
        ([19, 1, 40, 33], [19, 1, 9, 1], 1, 64, 16, -1),  # mixed prefill and decode
        ([300, 5], [1, 1], 2, 128, 32, 64),  # 32-token blocks, a sliding window
        ([4, 17, 40], [4, 4, 4], 2, 64, 16, -1),  # speculative: token + 3 drafts each
    ],
)
def test_cpp_cache_and_attend_equals_the_write_then_attention(seq_lens, query_lens, hkv, d, bs, window):
    """The host attention op's one C++ call (write, schedule, attention) computes what
    the two native ops compute: the same cache afterwards and the same rows, bit for
    bit; a padded token's slot (-1) is not written and a row of no request is zero."""
    from vllm_npu_graph.targets import host_ops

    assert host_ops.load()
    hq = 4 * hkv
    kv_ref, bt, keys, values, q, qsl = build_batch(seq_lens, query_lens, hq, hkv, d, bs, torch.float32)
    old = [s - ql for s, ql in zip(seq_lens, query_lens)]  # cached before this step
    kv = native_cache_like(old, bt, keys, values, kv_ref.shape[0], hkv, d, bs)
    new_k = torch.cat([k[o:] for k, o in zip(keys, old)] + [torch.randn(2, hkv, d)])  # + 2 padded tokens
    new_v = torch.cat([v[o:] for v, o in zip(values, old)] + [torch.randn(2, hkv, d)])
    slots = [bt[r, p // bs].long() * bs + p % bs for r, (o, s) in enumerate(zip(old, seq_lens)) for p in range(o, s)]
    slots = torch.tensor(slots + [-1, -1])
    query = torch.cat([q, torch.randn(2, hq, d)])
    qsl, lens = torch.tensor(qsl, dtype=torch.int32), torch.tensor(seq_lens, dtype=torch.int32)

    two_ops = kv.clone()
    host_native.write_kv_cache(new_k, new_v, two_ops, slots)
    expected = host_native.paged_attention(query, two_ops, qsl, lens, bt, d**-0.5, window if window > 0 else None, 1, 0)
    with no_host_sync():
        got = torch.ops.npu_graph_host.cache_and_attend(query, new_k, new_v, kv, slots, qsl, lens, bt, d**-0.5, window)
    assert torch.equal(kv, two_ops)
    assert torch.equal(got, expected.flatten(1))
    assert got[q.shape[0] :].abs().max() == 0


@pytest.mark.parametrize("m, n, k, bias", [(1, 1536, 576, False), (16, 960, 576, True), (3, 49152, 64, False)])
def test_packed_linear_equals_f_linear(m, n, k, bias):
    x, w = torch.randn(m, k), torch.randn(n, k) / math.sqrt(k)
    b = torch.randn(n) if bias else None
    for _ in range(2):  # packed on first use, reused after
        torch.testing.assert_close(
            host_native.linear_impl()(x, w, b), torch.nn.functional.linear(x, w, b), atol=1e-4, rtol=1e-4
        )


def test_linear_pass_routes_weight_matmuls_and_leaves_others():
    from torch.fx.experimental.proxy_tensor import make_fx

    from vllm_npu_graph.passes import linear

    aten = torch.ops.aten

    def f(x, w1, w2, b2, r, y):  # the aten spellings of F.linear Inductor hands our pass
        h = aten.mm(x, aten.permute(w1, [1, 0]))  # linear, no bias
        out = aten.addmm(b2, h, aten.permute(w2, [1, 0]))  # linear with bias
        res = aten.addmm(r, x, aten.permute(w1, [1, 0]))  # a residual folded into addmm
        return out, res, aten.mm(x, y)  # the last multiplies no weight (y is [K, N])

    args = (
        torch.randn(3, 8),
        torch.randn(16, 8),
        torch.randn(4, 16),
        torch.randn(4),
        torch.randn(3, 16),
        torch.randn(8, 5),
    )
    gm = make_fx(f)(*args)
    expected = gm(*args)
    assert linear.run(make_fx(f, tracing_mode="symbolic")(*args).graph) == 0  # activations: symbolic shapes
    assert linear.run(gm.graph) == 3
    gm.recompile()
    calls = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert calls.count(torch.ops.npu_graph.linear.default) == 3
    assert torch.ops.aten.mm.default in calls and torch.ops.aten.add.Tensor in calls
    for got, want in zip(gm(*args), expected):
        torch.testing.assert_close(got, want)


def test_native_fused_ops_equal_the_references():
    from vllm_npu_graph.kernels import fused_reference as fused

    x, r, w = torch.randn(5, 576), torch.randn(5, 576), torch.randn(576)
    x0, r0 = x.clone(), r.clone()
    torch.testing.assert_close(host_native.rms_norm(x, w, 1e-5), fused.rms_norm(x, w, 1e-5), atol=1e-5, rtol=1e-5)
    for got, want in zip(host_native.add_rms_norm(x, r, w, 1e-6), fused.add_rms_norm(x, r, w, 1e-6)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    gate_up = torch.randn(5, 2 * 1536)
    torch.testing.assert_close(host_native.swiglu(gate_up), fused.swiglu(gate_up), atol=1e-5, rtol=1e-5)
    assert torch.equal(x, x0) and torch.equal(r, r0)  # inputs untouched (our ops are functional)


def test_cpp_linear_equals_f_linear_and_reuses_its_pack():
    from vllm_npu_graph.targets import host_ops

    assert host_ops.load(), "the host target's C++ ops must build on the CI machine (g++ and torch headers)"
    op = torch.ops.npu_graph_host.linear.default
    w, b = torch.randn(960, 576) / 24, torch.randn(960)
    for x in (torch.randn(1, 576), torch.randn(2, 3, 576), torch.randn(16, 576)):
        for bias in (None, b):
            torch.testing.assert_close(op(x, w, bias), torch.nn.functional.linear(x, w, bias), atol=1e-4, rtol=1e-4)
    w2 = w.clone() * 2  # another storage: packed on its own, not served w's pack
    x = torch.randn(4, 576)
    torch.testing.assert_close(op(x, w2, None), torch.nn.functional.linear(x, w2), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("n, k", [(1001, 600), (7, 20), (49152, 576)])
def test_cpp_linear_one_row_equals_f_linear(n, k):
    """One row is our few-rows kernel (x86) or oneDNN: weight rows split between
    threads, counts off its 4-row tile, widths off its vector step, strided inputs, and
    a transposed weight."""
    from vllm_npu_graph.targets import host_ops

    assert host_ops.load()
    op = torch.ops.npu_graph_host.linear.default
    w, b = torch.randn(n, k) / math.sqrt(k), torch.randn(n)
    wide = torch.randn(1, 2 * k)
    for x in (torch.randn(1, k), torch.randn(1, 1, k), wide[:, ::2]):
        for bias in (None, b):
            torch.testing.assert_close(op(x, w, bias), torch.nn.functional.linear(x, w, bias), atol=1e-4, rtol=1e-4)
    w_t = torch.randn(k, n).t()  # not contiguous: served by oneDNN
    torch.testing.assert_close(
        op(wide[:, :k], w_t, None), torch.nn.functional.linear(wide[:, :k], w_t), atol=1e-4, rtol=1e-4
    )


def test_host_lowering_routes_linear_to_the_cpp_op():
    from torch.fx.experimental.proxy_tensor import make_fx

    import vllm_npu_graph.ops.fused  # noqa: F401  (defines npu_graph::linear)
    from vllm_npu_graph.targets import host_attention, host_ops
    from vllm_npu_graph.targets.host import HostTarget

    assert [name for name, _ in HostTarget().lowering_passes("native")] == [host_attention.NAME, host_ops.NAME]
    # Parity runs keep our Python kernels; the attention op pair is fused for any kernels.
    assert [name for name, _ in HostTarget().lowering_passes("reference")] == [host_attention.NAME]
    gm = make_fx(
        lambda x, w: torch.ops.npu_graph.linear(torch.ops.npu_graph.linear(x, w, None), w, None), tracing_mode="fake"
    )(torch.randn(2, 8), torch.randn(8, 8))
    assert host_ops.lower_linear(gm.graph) == 2
    targets = {n.target for n in gm.graph.nodes if n.op == "call_function"}
    assert targets == {torch.ops.npu_graph_host.linear.default}


def test_host_ops_build_failure_is_logged_and_the_python_kernel_serves(tmp_path, monkeypatch, caplog):
    from vllm_npu_graph.targets import host_attention, host_ops
    from vllm_npu_graph.targets.host import HostTarget

    broken = tmp_path / "host_ops.cpp"
    broken.write_text("this is not C++\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(host_ops, "SOURCE", broken)
    host_ops.load.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            assert [name for name, _ in HostTarget().lowering_passes("native")] == [host_attention.NAME]
        assert "could not be built" in caplog.text
    finally:
        host_ops.load.cache_clear()


def test_greedy_argmax_equals_torch_s_first_index_of_the_maximum(monkeypatch):
    """vLLM CPU's argmax kernel on float32 rows (ties, NaN, strided rows), torch's on
    others; the runner's sampler takes it from the kernel choice."""
    from vllm_npu_graph.ops import kernel_choice
    from vllm_npu_graph.worker.sampler import NPUGraphSampler

    logits = torch.randn(16, 49152)
    logits[0, 10] = logits[0, 20] = 100.0  # a tie: the first index
    logits[1, 7] = float("nan")
    for x in (logits, logits[:, ::2], logits.bfloat16()):
        assert torch.equal(host_native.greedy_argmax(x), x.argmax(dim=-1))
    monkeypatch.setitem(kernel_choice.impls, "greedy_argmax", host_native.greedy_argmax)
    assert torch.equal(NPUGraphSampler.greedy_sample(logits), logits.argmax(dim=-1))
