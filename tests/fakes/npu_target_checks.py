"""NPU-target checks through the fake torch_npu. They install the fake into the
process (torch.npu, the "npu" device name), so test_npu_target.py runs this file in a
fresh interpreter: `python -m pytest tests/fakes/npu_target_checks.py`."""

import importlib
import os
import sys
from pathlib import Path

import pytest
import torch

FAKES = Path(__file__).parent


@pytest.fixture(scope="module")
def fake_npu():
    sys.path.insert(0, str(FAKES))
    import fetch_contract

    fetch_contract.fetch(
        Path(os.environ.get("VLLM_NPU_GRAPH_NPU_CONTRACT", FAKES.parents[1] / ".cache/torch-npu-contract"))
    )
    fake = importlib.import_module("torch_npu")
    from vllm_npu_graph.targets.npu import NPUTarget

    return fake, NPUTarget()


def test_the_fake_rejects_what_the_real_op_would(fake_npu):
    fake, _ = fake_npu
    x, gamma = torch.randn(2, 8), torch.ones(8)
    with pytest.raises(TypeError, match="unexpected keyword"):
        fake.npu_rms_norm(x, gamma, eps=1e-6)
    with pytest.raises(TypeError, match="must be float"):
        fake.npu_rms_norm(x, gamma, "1e-6")
    with pytest.raises(TypeError):
        torch.npu.graph(torch.npu.NPUGraph(), memory_pool=None)


def test_device_and_memory_facts(fake_npu):
    _, target = fake_npu
    assert target.device(1) == torch.device("npu:1")
    assert (target.dist_backend, target.dispatch_key) == ("hccl", "PrivateUse1")
    assert target.total_memory() == 64 << 30
    assert target.free_memory() == (64 << 30) - (1 << 30)
    assert target.memory_in_use() == 1 << 30


def test_capture_and_replay_go_through_npugraph(fake_npu):
    fake, target = fake_npu
    fake.CALLS.clear()
    static = torch.zeros(4)
    graph = target.capture_graph(lambda x: x + 1, (static,), {})
    assert torch.equal(graph.output, torch.ones(4))
    moved = torch.full((4,), 5.0)
    graph.replay((moved,), {})
    assert torch.equal(static, moved)  # inputs that moved are copied into the captured ones
    names = [name for name, _ in fake.CALLS]
    assert names == [
        "torch.npu.graph_pool_handle",
        "torch.npu.graph.__init__",
        "torch.npu.NPUGraph.capture_begin",
        "torch.npu.NPUGraph.capture_end",
        "torch.npu.NPUGraph.replay",
    ]
    assert fake.CALLS[2][1] == {"pool": ("fake-pool",), "capture_error_mode": "global"}


def test_lowering_runs_our_passes_then_npugraph_ex_without_its_own_capture(fake_npu):
    fake, target = fake_npu
    from vllm_npu_graph.compilation.pass_manager import NPUGraphPassManager

    seen = []
    manager = NPUGraphPassManager([("count_nodes", lambda g: seen.append(len(g.nodes)) or 0)])
    gm = torch.fx.symbolic_trace(lambda x: (torch.relu(x) * 2,))  # Dynamo graphs return tuples
    fake.CALLS.clear()
    compiled = target.lower_graph(gm, [torch.randn(3)], manager)
    x = torch.tensor([-1.0, 2.0, 3.0])
    assert torch.equal(compiled(x)[0], torch.relu(x) * 2)
    assert seen and manager.last_counts == {"count_nodes": 0}
    assert ("torch.npu.npugraph_ex.compile_fx", {"options": {"force_eager": True}}) in fake.CALLS


def test_fused_ops_dispatch_to_torch_npu(fake_npu):
    fake, target = fake_npu
    from vllm_npu_graph.kernels import fused_reference as ref
    from vllm_npu_graph.ops import fused, kernel_choice  # noqa: F401

    kernel_choice.configure(None, target.native_ops("triton"))
    try:
        fake.CALLS.clear()
        x, r, w = torch.randn(3, 16), torch.randn(3, 16), torch.rand(16) + 0.5
        torch.testing.assert_close(torch.ops.npu_graph.rms_norm(x, w, 1e-5), ref.rms_norm(x, w, 1e-5))
        for got, want in zip(torch.ops.npu_graph.add_rms_norm(x, r, w, 1e-5), ref.add_rms_norm(x, r, w, 1e-5)):
            torch.testing.assert_close(got, want)
        gu = torch.randn(3, 32)
        torch.testing.assert_close(torch.ops.npu_graph.swiglu(gu), ref.swiglu(gu))
        calls = {name: args for name, args in fake.CALLS}
        assert calls["npu_rms_norm"]["epsilon"] == 1e-5
        assert calls["npu_add_rms_norm"]["epsilon"] == 1e-5
        assert calls["npu_swiglu"]["dim"] == -1
    finally:
        kernel_choice.configure(None)


def test_moe_ops_dispatch_to_torch_npu(fake_npu):
    """Gating, routing, grouped matmuls and un-permute through the fake's documented
    semantics equal the reference, expert parallel included; every call binds to the
    wheel's schema and the dtypes the real ops demand."""
    fake, target = fake_npu
    from vllm_npu_graph.kernels import moe_reference as ref
    from vllm_npu_graph.ops import kernel_choice, moe

    kernel_choice.configure(None, target.native_ops("triton"))
    try:
        fake.CALLS.clear()
        g = torch.Generator().manual_seed(0)
        x, logits = torch.randn(5, 32, generator=g), torch.randn(5, 6, generator=g)
        w13, w2 = torch.randn(6, 2 * 24, 32, generator=g) * 0.1, torch.randn(6, 32, 24, generator=g) * 0.1
        weights, ids = moe.topk_softmax(logits, 2, True)
        ref_weights, ref_ids = ref.topk_softmax(logits, 2, True)
        torch.testing.assert_close(weights, ref_weights)
        assert torch.equal(ids, ref_ids)
        packed = moe.pack_weights(w13, w2)
        assert packed[0].shape == (6, 32, 48) and packed[1].shape == (6, 24, 32)
        got = moe.experts(x, weights, ids, *packed, None)
        torch.testing.assert_close(got, ref.experts(x, weights, ids, w13, w2, None), rtol=1e-5, atol=1e-5)
        expert_map = torch.tensor([-1, -1, -1, 0, 1, 2], dtype=torch.int32)  # this rank holds 3-5
        held = moe.pack_weights(w13[3:], w2[3:])
        torch.testing.assert_close(
            moe.experts(x, weights, ids, *held, expert_map),
            ref.experts(x, weights, ids, w13[3:], w2[3:], expert_map),
            rtol=1e-5,
            atol=1e-5,
        )
        calls = {name: args for name, args in fake.CALLS}
        assert calls["npu_moe_gating_top_k_softmax"]["k"] == 2
        assert calls["npu_moe_init_routing_v2"]["active_num"] == 10
        assert calls["npu_moe_init_routing_v2"]["expert_tokens_num_flag"] is True
    finally:
        kernel_choice.configure(None)


def test_int8_ops_dispatch_to_torch_npu(fake_npu):
    """W8A8: npu_dynamic_quant and npu_quant_matmul (weight [K, N], float32 scales,
    bfloat16 out) equal the reference's integer math; bias added after the matmul."""
    fake, target = fake_npu
    from vllm_npu_graph.kernels import quant_reference as ref
    from vllm_npu_graph.ops import kernel_choice, quant

    kernel_choice.configure(None, target.native_ops("triton"))
    try:
        fake.CALLS.clear()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(5, 64, generator=g).to(torch.bfloat16)
        w, w_scale = ref.quantize_weight(torch.randn(48, 64, generator=g) * 0.1)
        bias = torch.randn(48, generator=g).to(torch.bfloat16)
        x_q, x_scale = quant.quant_per_token(x)
        ref_q, ref_scale = ref.quant_per_token(x)
        assert torch.equal(x_q, ref_q) and x_scale.shape == (5, 1)
        torch.testing.assert_close(x_scale, ref_scale)
        packed, keep = quant.pack_int8_weight(w, w_scale.view(-1), torch.bfloat16)
        assert packed.shape == (64, 48) and keep is None
        got = quant.int8_linear(x_q, x_scale, packed, w_scale.view(-1), bias, torch.bfloat16)
        want = ref.int8_linear(ref_q, ref_scale, w.t(), w_scale.view(-1), bias, torch.bfloat16)
        torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-2)
        calls = dict(fake.CALLS)
        assert calls["npu_quant_matmul"]["output_dtype"] == torch.bfloat16
        assert calls["npu_quant_matmul"]["pertoken_scale"].shape == (5,)
    finally:
        kernel_choice.configure(None)


def test_fused_quant_ops_dispatch_to_torch_npu_and_triton(fake_npu):
    """add + RMSNorm + quant -> npu_add_rms_norm_dynamic_quant (first quantized output
    only), SwiGLU + quant -> npu_swiglu_quant (dynamic, SiLU on the first half); RMSNorm +
    quant (no dynamic torch_npu op) -> our Triton kernel. Each equals the reference."""
    fake, target = fake_npu
    from vllm_npu_graph.kernels import quant_reference as ref
    from vllm_npu_graph.kernels.launch import INTERPRETER_TABLE
    from vllm_npu_graph.ops import kernel_choice, quant

    kernel_choice.configure(INTERPRETER_TABLE, target.native_ops("triton"))
    try:
        fake.CALLS.clear()
        g = torch.Generator().manual_seed(0)
        x, r = torch.randn(5, 64, generator=g).half(), torch.randn(5, 64, generator=g).half()
        w = (1 + 0.1 * torch.randn(64, generator=g)).half()
        q, scale, summed = quant.add_rms_norm_quant(x, r, w, 1e-6)
        q_ref, scale_ref, summed_ref = ref.add_rms_norm_quant(x, r, w, 1e-6)
        assert torch.equal(q, q_ref) and torch.equal(scale, scale_ref) and torch.equal(summed, summed_ref)
        q, scale = quant.swiglu_quant(torch.cat([x, r], dim=1))
        assert all(torch.equal(a, b) for a, b in zip((q, scale), ref.swiglu_quant(torch.cat([x, r], dim=1))))
        q, scale = quant.rms_norm_quant(x, w, 1e-6)
        q_ref, scale_ref = ref.rms_norm_quant(x, w, 1e-6)
        assert (q.int() - q_ref.int()).abs().max() <= 1 and scale.shape == (5, 1)
        calls = dict(fake.CALLS)
        assert calls["npu_add_rms_norm_dynamic_quant"]["output_mask"] == [True, False]
        assert calls["npu_swiglu_quant"]["activate_left"] is True and calls["npu_swiglu_quant"]["quant_mode"] == 1
        assert set(calls) == {"npu_add_rms_norm_dynamic_quant", "npu_swiglu_quant"}
    finally:
        kernel_choice.configure(None)


def test_a_moe_layer_is_captured_once_per_size_with_static_routing_shapes(fake_npu):
    """Each padded size's graph holds the whole MoE (gating, routing, grouped matmuls,
    un-permute) with that size's expanded-row count fixed, and nothing else runs."""
    fake, target = fake_npu
    from vllm_npu_graph.ops import kernel_choice, moe

    kernel_choice.configure(None, target.native_ops("triton"))
    try:
        w13, w2 = moe.pack_weights(torch.randn(6, 48, 32) * 0.1, torch.randn(6, 32, 24) * 0.1)

        def layer(x, logits):
            return moe.experts(x, *moe.topk_softmax(logits, 2, True), w13, w2, None)

        for size in (1, 4):
            fake.CALLS.clear()
            graph = target.capture_graph(layer, (torch.randn(size, 32), torch.randn(size, 6)), {})
            assert graph.output.shape == (size, 32)
            names = [name for name, _ in fake.CALLS]
            begin, end = names.index("torch.npu.NPUGraph.capture_begin"), names.index("torch.npu.NPUGraph.capture_end")
            assert names[begin - 1] == "torch.npu.graph.__init__" and end == len(names) - 1
            inside = names[begin + 1 : end]
            assert inside == [
                "npu_moe_gating_top_k_softmax",
                "npu_moe_init_routing_v2",
                "npu_grouped_matmul",
                "npu_swiglu",
                "npu_grouped_matmul",
                "npu_moe_token_unpermute",
            ], inside
            assert dict(fake.CALLS)["npu_moe_init_routing_v2"]["active_num"] == size * 2
    finally:
        kernel_choice.configure(None)


def test_worker_init_hccl_groups_and_collectives_on_two_ranks():
    """Our worker's device init, HCCL group creation, TP collectives, triton-ascend
    launch table and KV memory accounting, one process per rank (see the script)."""
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = FAKES / "hccl_worker_check.py"
    ranks = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), "2", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [proc.communicate(timeout=300)[0] for proc in ranks]
    for rank, (proc, out) in enumerate(zip(ranks, outputs)):
        assert proc.returncode == 0 and f"rank {rank}: ok" in out, out[-3000:]


def test_stream_exhaustion_is_explained(fake_npu):
    _, target = fake_npu
    message = target.explain_capture_error(RuntimeError("ACL error 207008: stream resources exhausted"))
    assert "max_graph_sizes" in message and "207008" in message
    assert target.explain_capture_error(RuntimeError("something else")) is None


def test_the_runners_copy_streams_are_npu_streams_while_it_is_built(fake_npu):
    """vLLM's runner constructor makes `torch.cuda.Stream()`s (speculative decoding's
    draft-token copies): NPU streams while ours is built, torch.cuda untouched after."""
    _, target = fake_npu
    cuda_stream = torch.cuda.Stream
    with target.runner_construction():
        assert isinstance(torch.cuda.Stream(), torch.npu.Stream)
    assert torch.cuda.Stream is cuda_stream
