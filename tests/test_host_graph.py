"""The host graph behaves as a device graph (captured host values, no host syncs in a
capture, capture only in the capture phase), and our graph path is right under it.
No engine: forward contexts, metadata and KV caches are built here."""

import os
from dataclasses import dataclass

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
from helpers.attention_batches import build_batch  # noqa: E402
from vllm.config import CUDAGraphMode  # noqa: E402
from vllm.forward_context import BatchDescriptor, ForwardContext, get_forward_context, override_forward_context  # noqa: E402

from vllm_npu_graph.compilation.capture_sizes import choose_capture_sizes, pad_to, worst_padding  # noqa: E402
from vllm_npu_graph.compilation.graph_wrapper import GraphCoverage, NPUGraphWrapper  # noqa: E402
from vllm_npu_graph.frozen_values import STRICT_ENV, GraphFaithfulnessError, no_host_sync  # noqa: E402
from vllm_npu_graph.kernels import attention_reference as ref  # noqa: E402
from vllm_npu_graph.kernels.attention_triton import decode_splits  # noqa: E402
from vllm_npu_graph.kernels.launch import INTERPRETER_TABLE  # noqa: E402
from vllm_npu_graph.ops import kernel_choice  # noqa: E402
from vllm_npu_graph.targets.host import HostTarget  # noqa: E402


@dataclass
class Meta:
    max_seq_len: int
    num_actual_tokens: int
    seq_lens: torch.Tensor


def context(meta, mode=CUDAGraphMode.FULL, desc=None):
    return ForwardContext(
        no_compile_layers={},
        attn_metadata={"layer.0": meta, "layer.1": meta},
        slot_mapping={},
        cudagraph_runtime_mode=mode,
        batch_descriptor=desc,
    )


def reads_max_seq_len(x):
    return x * get_forward_context().attn_metadata["layer.0"].max_seq_len


def capture(fn, x, meta):
    target = HostTarget()
    with override_forward_context(context(meta)), target.capture_context():
        return target.capture_graph(fn, (x,), {})


@pytest.fixture
def lenient(monkeypatch):
    monkeypatch.setenv(STRICT_ENV, "0")


def test_a_changed_host_value_is_an_error_naming_it_and_its_reader():
    lens = torch.tensor([1, 1])
    graph = capture(reads_max_seq_len, torch.ones(2), Meta(1, 2, lens))
    with override_forward_context(context(Meta(7, 2, lens))):
        with pytest.raises(GraphFaithfulnessError, match=r"'max_seq_len'.*captured 1, live 7.*reads_max_seq_len"):
            graph.replay((torch.ones(2),), {})


def test_without_strict_mode_replay_uses_the_captured_value_as_a_device_does(lenient):
    lens = torch.tensor([1, 1])
    graph = capture(reads_max_seq_len, torch.ones(2), Meta(1, 2, lens))
    with override_forward_context(context(Meta(7, 2, lens))):
        assert graph.replay((torch.full((2,), 3.0),), {}).tolist() == [3.0, 3.0]  # x * 1, not x * 7


def test_fields_the_graph_never_read_may_change():
    lens = torch.tensor([1, 1])
    graph = capture(reads_max_seq_len, torch.ones(2), Meta(1, 2, lens))
    with override_forward_context(context(Meta(1, 99, lens))):
        graph.replay((torch.ones(2),), {})


def test_a_tensor_read_at_another_address_is_an_error():
    def reads_lens(x):
        return x + get_forward_context().attn_metadata["layer.0"].seq_lens.sum()

    graph = capture(reads_lens, torch.ones(2), Meta(1, 2, torch.tensor([1, 1])))
    with override_forward_context(context(Meta(1, 2, torch.tensor([1, 1])))):
        with pytest.raises(GraphFaithfulnessError, match="'seq_lens'.*tensor at"):
            graph.replay((torch.ones(2),), {})


def host_read(x, how):
    if how == "item":
        x[0].item()
    elif how == "tolist":
        x.tolist()
    elif how == "bool":
        bool(x[0] > 0)
    elif how == "int":
        int(x[0])


@torch.library.custom_op("npu_graph_test::reads_lengths", mutates_args=())
def reads_lengths(x: torch.Tensor, how: str) -> torch.Tensor:
    host_read(x, how)
    return x.clone()


@pytest.mark.parametrize("how", ["item", "tolist", "bool", "int"])
@pytest.mark.parametrize("inside_op", [True, False])
def test_host_syncs_during_capture_are_errors(how, inside_op):
    def fn(x):
        if inside_op:
            return torch.ops.npu_graph_test.reads_lengths(x, how)
        host_read(x, how)
        return x + 1

    with pytest.raises(GraphFaithfulnessError, match="host sync during graph capture"):
        capture(fn, torch.tensor([1, 2]), Meta(1, 2, torch.tensor([1])))


def test_capture_outside_the_capture_phase_is_an_error():
    with override_forward_context(context(Meta(1, 2, torch.tensor([1])))):
        with pytest.raises(GraphFaithfulnessError, match="outside the target's capture context"):
            HostTarget().capture_graph(lambda x: x + 1, (torch.ones(1),), {})


def test_graphs_are_keyed_on_the_whole_batch_descriptor_and_captured_only_in_the_capture_phase():
    calls = []

    def runnable(x):
        calls.append(x.shape[0])
        return x * 2

    wrapper = NPUGraphWrapper(runnable, 8, GraphCoverage())
    meta = Meta(1, 8, torch.tensor([1]))
    decode, mixed = BatchDescriptor(8, 8, uniform=True), BatchDescriptor(8, 4, uniform=False)
    with override_forward_context(context(meta, desc=decode)):
        wrapper(torch.ones(8))  # outside the capture phase: runs, captures nothing
        assert not wrapper.graphs
        with wrapper.target.capture_context(), wrapper.capture_phase():
            wrapper(torch.ones(8))
        assert set(wrapper.graphs) == {decode}
    calls.clear()
    with override_forward_context(context(meta, desc=mixed)):
        wrapper(torch.ones(8))
    assert calls == [8], "a descriptor with the same token count but another shape replayed the decode graph"


def test_coverage_counts_replays_and_fallbacks_of_scheduled_steps_only():
    coverage = GraphCoverage()
    wrapper = NPUGraphWrapper(lambda x: x * 2, 8, coverage)
    decode = BatchDescriptor(8, 8, uniform=True)
    with override_forward_context(context(Meta(1, 8, torch.tensor([1])), desc=decode)):
        with wrapper.target.capture_context(), wrapper.capture_phase():
            wrapper(torch.ones(8))
        wrapper.serving = True
        wrapper(torch.ones(8))  # a dummy run (no scheduled tokens): not counted
        coverage.step_tokens = 5
        wrapper(torch.ones(8))
        wrapper(torch.ones(8))
    with override_forward_context(context(Meta(1, 8, torch.tensor([1])), desc=None)):
        wrapper(torch.ones(8))
    assert coverage.as_dict() == {
        "replayed_steps": {"8": 2},
        "replayed_tokens": {"8": 10},
        "eager_steps": {"a prefill or mixed batch (graphs serve decode batches)": 1},
        "eager_tokens": {"a prefill or mixed batch (graphs serve decode batches)": 5},
    }
    assert coverage.summary().startswith("replayed 2 step(s), 10 token(s) (67% of steps; steps by graph {8: 2})")


def test_capture_sizes_minimise_worst_padding_within_the_limit():
    vllm_default = [1, 2, 4, *range(8, 256, 8), *range(256, 513, 16)]
    kept = choose_capture_sizes(vllm_default, 16, 256)
    assert len(kept) <= 16 and kept[-1] == 256 and kept[0] == 1
    worst, _ = worst_padding(kept)
    assert worst <= 0.34
    n = len(vllm_default) - 1
    by_index = sorted({vllm_default[round(i * n / 15)] for i in range(16)})  # the old thinning
    assert worst_padding(by_index)[0] > 3
    assert all(pad_to(b, kept) - b <= 0.34 * b for b in range(1, 257))
    assert choose_capture_sizes([1, 2, 4, 8, 16], 16, 32) == [1, 2, 4, 8, 16]  # within the limit: as given
    assert choose_capture_sizes([1, 2, 4, 8, 16], 2, 32) == [1, 16]
    assert choose_capture_sizes([1, 2, 4, 8, 16], 1, 32) == [16]  # one graph: the one that serves every batch


def test_reference_decode_and_kv_write_do_no_host_sync():
    kv, bt, _, _, q, qsl = build_batch([5, 40, 0], [1, 1, 0], 4, 2, 64, 16, torch.float32)
    lens, qsl = torch.tensor([5, 40, 0], dtype=torch.int32), torch.tensor(qsl)
    expected = ref.paged_attention(q, kv, qsl, lens, bt, 0.125)  # the per-request path
    with no_host_sync():
        got = ref.paged_attention(q, kv, qsl, lens, bt, 0.125, None, 1, 0)
        ref.write_kv_cache(q[:, :2], q[:, :2], kv, torch.tensor([3, -1], dtype=torch.int64))
    torch.testing.assert_close(got, expected)


def test_decode_splits_come_from_the_static_bound_not_the_live_lengths():
    assert decode_splits(INTERPRETER_TABLE, tasks=2, block=16, bound=2048) > 1
    assert decode_splits(INTERPRETER_TABLE, tasks=2, block=16, bound=32) == 1
    assert decode_splits(INTERPRETER_TABLE, tasks=1000, block=16, bound=2048) == 1


@pytest.mark.parametrize("kernels", ["reference", "triton"])
def test_a_decode_graph_captured_short_replays_long_contexts_like_eager(kernels):
    """The attention impl in a decode graph captured at context 1, replayed at 1,500
    tokens (and at 700 with a padded request), equals the eager result."""
    from vllm_npu_graph.attention.backend import NPUGraphAttentionImpl, NPUGraphAttentionMetadata

    kernel_choice.configure(INTERPRETER_TABLE if kernels == "triton" else None)
    try:
        impl = NPUGraphAttentionImpl(num_heads=4, head_size=64, scale=0.125, num_kv_heads=1)
        width = 2048 // 16  # block table width: the static bound (max_model_len 2048)
        kv, bt, _, _, q, qsl = build_batch([1500, 700], [1, 1], 4, 1, 64, 16, torch.float32)
        table = torch.zeros(2, width, dtype=torch.int32)
        table[:, : bt.shape[1]] = bt
        qsl_buf, lens_buf = torch.zeros(3, dtype=torch.int32), torch.zeros(2, dtype=torch.int32)
        q_buf, out_buf = torch.zeros_like(q), torch.zeros_like(q)

        def metadata(lens, qlens):
            qsl_buf.copy_(torch.tensor([0, qlens[0], qlens[0] + qlens[1]]))
            lens_buf.copy_(torch.tensor(lens))
            return NPUGraphAttentionMetadata(
                num_actual_tokens=sum(qlens),
                max_query_len=1,
                max_seq_len=max(lens),
                decode_query_len=1,
                decode_only=True,
                query_start_loc=qsl_buf,
                seq_lens=lens_buf,
                block_table=table,
                slot_mapping=torch.full((2,), -1),
            )

        def step(x):
            return impl.attend(x, kv, get_forward_context().attn_metadata["layer.0"], out_buf)

        target = HostTarget()
        with override_forward_context(context(metadata([1, 1], [1, 1]))), target.capture_context():
            graph = target.capture_graph(step, (q_buf,), {})
        for lens, qlens in (([1500, 700], [1, 1]), ([700, 0], [1, 0])):
            live = metadata(lens, qlens)
            with override_forward_context(context(live, mode=CUDAGraphMode.NONE)):
                expected = impl.attend(q, kv, live, torch.empty_like(q)).clone()
            with override_forward_context(context(live)):
                got = graph.replay((q,), {})
            torch.testing.assert_close(got, expected, atol=2e-4, rtol=2e-4)
            assert got.abs().sum() > 0
    finally:
        kernel_choice.configure(None)
