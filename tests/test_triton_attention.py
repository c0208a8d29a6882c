"""Triton attention / KV-write kernels against the torch references, under the CPU
interpreter (TRITON_INTERPRET=1, set before the kernels are defined)."""

import os

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
from helpers.attention_batches import build_batch  # noqa: E402

from vllm_npu_graph.kernels import attention_reference as ref  # noqa: E402
from vllm_npu_graph.kernels import attention_triton as tri  # noqa: E402
from vllm_npu_graph.kernels.launch import INTERPRETER_TABLE, LaunchTable  # noqa: E402

TOL = {torch.float32: 2e-4, torch.float16: 3e-3, torch.bfloat16: 3e-2}


def run_both(seq_lens, query_lens, hq, hkv, d, bs, dtype, window=None, table=INTERPRETER_TABLE):
    kv_cache, block_table, _, _, q, qsl = build_batch(seq_lens, query_lens, hq, hkv, d, bs, dtype)
    args = (q, kv_cache, torch.tensor(qsl), torch.tensor(seq_lens, dtype=torch.int32), block_table, d**-0.5, window)
    expected = ref.paged_attention(*args)
    got = tri.paged_attention(*args, max_query_len=max(query_lens), table=table, max_seq_len=max(seq_lens))
    torch.testing.assert_close(got.float(), expected.float(), atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("hq, hkv, d", [(2, 2, 64), (8, 2, 128), (8, 1, 64)])
def test_decode(dtype, hq, hkv, d):
    # length 1, a block boundary (16/17), a padded request (query 0, length 0)
    run_both([1, 16, 17, 40, 0], [1, 1, 1, 1, 0], hq, hkv, d, 16, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_split_kv_long_context(dtype):
    # one sequence of 300 tokens in blocks of 32: few tasks, so the split-KV kernel
    # and its reduction run.
    table = LaunchTable(upcast_dot=True, cube_programs=16, max_kv_splits=4)
    run_both([300], [1], 4, 1, 64, 32, dtype, table=table)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("hq, hkv, d, bs", [(4, 1, 64, 16), (4, 4, 128, 32), (8, 1, 48, 64)])
def test_prefill_and_chunked_prefill(dtype, hq, hkv, d, bs):
    # full prefills, a chunk over a cached prefix, and decode rows in the same batch
    run_both([19, 1, 40, 33], [19, 1, 9, 1], hq, hkv, d, bs, dtype)


def test_ascend_budget_tiles_blocks_and_caps_programs():
    # A tight live budget: a 128-token block of D=128 is walked in smaller KV tiles, and
    # programs are capped (one per core) so each loops over several tasks.
    table = LaunchTable(upcast_dot=True, vector_programs=4, cube_programs=3, live_bytes=64 * 1024)
    assert table.kv_tile(128, 16, 128, 2) < 128
    run_both([200, 1, 130], [1, 1, 1], 8, 2, 128, 128, torch.bfloat16, table=table)
    run_both([150, 40], [150, 7], 4, 1, 128, 128, torch.float16, table=table)


@pytest.mark.parametrize("window", [5, 20])
def test_sliding_window(window):
    run_both([30, 45], [30, 1], 4, 2, 64, 16, torch.float32, window=window)
    run_both([45, 60], [1, 1], 4, 2, 64, 16, torch.float32, window=window)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kv_write_matches_reference_and_skips_padding(dtype):
    torch.manual_seed(0)
    key, value = torch.randn(5, 2, 64).to(dtype), torch.randn(5, 2, 64).to(dtype)
    slots = torch.tensor([3, -1, 40, 17, -1])
    a = torch.zeros(4, 16, 2, 128, dtype=dtype).transpose(1, 2)
    b = torch.zeros_like(a)
    ref.write_kv_cache(key, value, a, slots)
    tri.write_kv_cache(key, value, b, slots, INTERPRETER_TABLE)
    assert torch.equal(a, b)


def test_kernel_sources_are_portable():
    """Ascend-only knobs live in launch tables, never in shared kernel source."""
    from pathlib import Path

    import vllm_npu_graph.kernels as kernels

    for path in Path(kernels.__file__).parent.glob("*_triton.py"):
        text = path.read_text()
        for word in ("care_padding", "multibuffer", "extra.cann", "torch_npu", "torch.npu"):
            assert word not in text, f"{path.name} uses {word}"


def test_uniform_speculative_batch_with_the_graph_bound():
    # 4 query tokens per request (a token + 3 drafts), a padding request, max_seq_len 0
    # as in a graph: the prefill kernel reads every length from the device.
    kv_cache, block_table, _, _, q, qsl = build_batch([4, 17, 40, 0], [4, 4, 4, 0], 8, 2, 64, 16, torch.float32)
    args = (q, kv_cache, torch.tensor(qsl), torch.tensor([4, 17, 40, 0], dtype=torch.int32), block_table, 0.125, None)
    expected = ref.paged_attention(*args)
    got = tri.paged_attention(*args, max_query_len=4, table=INTERPRETER_TABLE, max_seq_len=0)
    torch.testing.assert_close(got, expected, atol=TOL[torch.float32], rtol=TOL[torch.float32])
