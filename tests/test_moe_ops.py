"""Our MoE ops (ops/moe.py): the torch reference against a per-token loop written from
the models' definition, the host target's native kernel against the reference, routing
edge cases, expert parallel, and no host sync in either under the strict host graph."""

import pytest
import torch
import torch.nn.functional as F

from vllm_npu_graph.frozen_values import GraphFaithfulnessError, no_host_sync
from vllm_npu_graph.kernels import moe_reference as ref
from vllm_npu_graph.targets import host_native

HIDDEN, INTER, EXPERTS, TOP_K = 128, 80, 6, 2  # 80: padded to 96 by the host kernel


def per_token_loop(x, router_logits, w13, w2, top_k, renormalize):
    """Softmax, top-k, (renormalise), then each chosen expert's SwiGLU MLP, token by token."""
    out = torch.zeros_like(x)
    inter = w13.shape[1] // 2
    for m in range(x.shape[0]):
        probs = torch.softmax(router_logits[m].float(), dim=-1)
        weights, ids = torch.topk(probs, top_k)
        if renormalize:
            weights = weights / weights.sum()
        for weight, e in zip(weights.tolist(), ids.tolist(), strict=True):
            gate_up = w13[e] @ x[m]
            out[m] += weight * (w2[e] @ (F.silu(gate_up[:inter]) * gate_up[inter:]))
    return out


def make_layer(rows, hidden=HIDDEN, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, hidden, generator=g)
    w13 = torch.randn(EXPERTS, 2 * INTER, hidden, generator=g) * 0.1
    w2 = torch.randn(EXPERTS, hidden, INTER, generator=g) * 0.1
    logits = torch.randn(rows, EXPERTS, generator=g)
    return x, logits, w13, w2


@pytest.mark.parametrize("renormalize", [True, False])
def test_reference_equals_the_per_token_loop(renormalize):
    x, logits, w13, w2 = make_layer(13)
    weights, ids = ref.topk_softmax(logits, TOP_K, renormalize)
    assert weights.dtype == torch.float32 and ids.dtype == torch.int32
    got = ref.experts(x, weights, ids, w13, w2, None)
    torch.testing.assert_close(got, per_token_loop(x, logits, w13, w2, TOP_K, renormalize), rtol=1e-5, atol=1e-5)


def routing(rows, case):
    """(weights, ids) for an edge case of routing."""
    weights = torch.full((rows, TOP_K), 1.0 / TOP_K)
    if case == "all-to-one":  # every row to expert 3 (twice: its weight sums)
        ids = torch.full((rows, TOP_K), 3, dtype=torch.int32)
    elif case == "idle-experts":  # experts 0 and 5 get no row
        ids = torch.tensor([[1 + (m % 4), 1 + ((m + 1) % 4)] for m in range(rows)], dtype=torch.int32)
    else:
        weights, ids = ref.topk_softmax(make_layer(rows)[1], TOP_K, True)
    return weights, ids


@pytest.mark.parametrize("rows", [1, 3, 8, 24])
@pytest.mark.parametrize("case", ["softmax", "all-to-one", "idle-experts"])
def test_host_kernel_equals_the_reference(rows, case):
    x, _, w13, w2 = make_layer(rows)
    weights, ids = routing(rows, case)
    packed13, packed2 = host_native.moe_pack_weights(w13, w2)
    assert packed13.shape == (EXPERTS, 2 * 96, HIDDEN) and packed2.shape == (EXPERTS, HIDDEN, 96)
    got = host_native.moe_experts(x, weights, ids, packed13, packed2, None)
    torch.testing.assert_close(got, ref.experts(x, weights, ids, w13, w2, None), rtol=1e-4, atol=1e-4)


def test_padded_rows_do_not_change_real_rows():
    """A captured batch padded from 3 to 8 rows: the padding (zeros, routed anywhere)
    leaves the real rows' outputs as they are alone."""
    x, _, w13, w2 = make_layer(3)
    weights, ids = routing(3, "softmax")
    padded_x = torch.cat([x, torch.zeros(5, HIDDEN)])
    padded_w = torch.cat([weights, torch.full((5, TOP_K), 0.5)])
    padded_ids = torch.cat([ids, torch.zeros(5, TOP_K, dtype=torch.int32)])
    packed = host_native.moe_pack_weights(w13, w2)
    alone = host_native.moe_experts(x, weights, ids, *packed, None)
    torch.testing.assert_close(host_native.moe_experts(padded_x, padded_w, padded_ids, *packed, None)[:3], alone)
    reference = ref.experts(padded_x, padded_w, padded_ids, w13, w2, None)[:3]
    torch.testing.assert_close(reference, alone, rtol=1e-4, atol=1e-4)


def test_expert_parallel_ranks_sum_to_the_whole_layer():
    """Two ranks holding experts 0-2 and 3-5: their outputs add up to one rank's."""
    x, _, w13, w2 = make_layer(8)
    weights, ids = routing(8, "softmax")
    whole = ref.experts(x, weights, ids, w13, w2, None)
    total = torch.zeros_like(whole)
    for rank in range(2):
        held = slice(3 * rank, 3 * rank + 3)
        expert_map = torch.full((EXPERTS,), -1, dtype=torch.int32)
        expert_map[held] = torch.arange(3, dtype=torch.int32)
        packed = host_native.moe_pack_weights(w13[held], w2[held])
        part = host_native.moe_experts(x, weights, ids, *packed, expert_map)
        reference = ref.experts(x, weights, ids, w13[held], w2[held], expert_map)
        torch.testing.assert_close(part, reference, rtol=1e-4, atol=1e-4)
        total += part
    torch.testing.assert_close(total, whole, rtol=1e-4, atol=1e-4)


def test_a_hidden_size_the_kernel_cannot_take_runs_the_reference():
    x, _, w13, w2 = make_layer(4, hidden=72)
    weights, ids = routing(4, "softmax")
    packed = host_native.moe_pack_weights(w13, w2)
    assert packed[0] is w13 and packed[1] is w2
    got = host_native.moe_experts(x, weights, ids, *packed, None)
    logits = make_layer(4)[1]  # the logits routing() chose `ids` and `weights` from
    torch.testing.assert_close(got, per_token_loop(x, logits, w13, w2, TOP_K, True), rtol=1e-5, atol=1e-5)


def test_routing_and_experts_do_no_host_sync():
    x, logits, w13, w2 = make_layer(8)
    packed = host_native.moe_pack_weights(w13, w2)
    with no_host_sync():
        weights, ids = ref.topk_softmax(logits, TOP_K, True)
        ref.experts(x, weights, ids, w13, w2, None)
        host_native.moe_experts(x, weights, ids, *packed, torch.arange(EXPERTS, dtype=torch.int32))
    with pytest.raises(GraphFaithfulnessError, match="host sync"), no_host_sync():
        torch.nonzero(ids == 3)  # what a routing written with a data-dependent shape would do


@pytest.mark.parametrize("rows, dtype", [(1, torch.float32), (13, torch.float32), (24, torch.bfloat16)])
def test_triton_kernels_equal_the_reference(rows, dtype):
    """The NPU target's portable MoE kernels (kernels/moe_triton.py) in the CPU interpreter."""
    from vllm_npu_graph.kernels import moe_triton
    from vllm_npu_graph.kernels.launch import INTERPRETER_TABLE

    x, logits, w13, w2 = (t.to(dtype) for t in make_layer(rows))
    weights, ids = ref.topk_softmax(logits, TOP_K, True)
    expert_map = torch.tensor([0, 1, 2, -1, -1, -1], dtype=torch.int32)
    for held, emap in ((slice(None), None), (slice(0, 3), expert_map)):
        got = moe_triton.experts(x, weights, ids, w13[held], w2[held], emap, table=INTERPRETER_TABLE)
        want = ref.experts(x.float(), weights, ids, w13[held].float(), w2[held].float(), emap)
        tol = 2e-2 if dtype == torch.bfloat16 else 1e-5
        torch.testing.assert_close(got.float(), want, rtol=tol, atol=tol)


def test_routing_we_do_not_compute_is_named():
    from types import SimpleNamespace

    from vllm.model_executor.layers.fused_moe.activation import MoEActivation

    from vllm_npu_graph.moe import unsupported_routing

    plain = dict(
        use_grouped_topk=False,
        e_score_correction_bias=None,
        custom_routing_function=None,
        scoring_func="softmax",
        routed_scaling_factor=1.0,
        apply_router_weight_on_input=False,
        activation=MoEActivation.SILU,
    )
    assert unsupported_routing(SimpleNamespace(**plain)) is None
    deepseek_v3 = dict(plain, use_grouped_topk=True, scoring_func="sigmoid", e_score_correction_bias=torch.zeros(8))
    assert unsupported_routing(SimpleNamespace(**deepseek_v3)) == "grouped top-k routing (DeepSeek-V3 style)"
    assert "scoring function 'sigmoid'" in unsupported_routing(SimpleNamespace(**dict(plain, scoring_func="sigmoid")))
