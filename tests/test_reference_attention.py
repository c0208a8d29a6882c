"""The torch reference paged attention and KV-cache write against dense attention."""

import pytest
import torch
from helpers.attention_batches import build_batch, dense_attention

from vllm_npu_graph.kernels.attention_reference import paged_attention, write_kv_cache
from vllm_npu_graph.kernels.runner_reference import compute_slot_mapping


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("hq, hkv", [(4, 4), (8, 2), (8, 1)])
@pytest.mark.parametrize("window", [None, 7])
def test_paged_attention_matches_dense(dtype, tol, hq, hkv, window):
    # decodes (query 1), a full prefill, a chunked prefill with cached prefix; lengths
    # cross block boundaries (block 16) and include length 1.
    seq_lens = [1, 17, 16, 40, 33, 64]
    query_lens = [1, 1, 16, 40, 9, 1]
    d, bs, scale = 64, 16, 0.125
    kv_cache, block_table, keys, values, q, qsl = build_batch(seq_lens, query_lens, hq, hkv, d, bs, dtype)
    out = paged_attention(q, kv_cache, torch.tensor(qsl), torch.tensor(seq_lens), block_table, scale, window)
    for r in range(len(seq_lens)):
        ref = dense_attention(q[qsl[r] : qsl[r + 1]], keys[r], values[r], seq_lens[r] - query_lens[r], scale, window)
        torch.testing.assert_close(out[qsl[r] : qsl[r + 1]], ref, atol=tol, rtol=tol)


def test_kv_write_skips_padding_slots():
    kv_cache = torch.zeros(4, 2, 16, 2 * 8).transpose(1, 2).transpose(1, 2)  # [blocks, heads, bs, 2D]
    key, value = torch.ones(3, 2, 8), 2 * torch.ones(3, 2, 8)
    write_kv_cache(key, value, kv_cache, torch.tensor([17, -1, 5]))
    assert kv_cache[1, :, 1, :8].eq(1).all() and kv_cache[1, :, 1, 8:].eq(2).all()
    assert kv_cache[0, :, 5, :8].eq(1).all()
    assert kv_cache.ne(0).sum() == 2 * 2 * 16  # two tokens written, nothing else


def test_slot_mapping_reference():
    qsl = torch.tensor([0, 3, 4], dtype=torch.int32)
    positions = torch.tensor([0, 1, 2, 17])
    block_table = torch.tensor([[5, 0], [2, 9]], dtype=torch.int32)
    slots = torch.full((6,), 123, dtype=torch.int64)
    compute_slot_mapping(4, 6, qsl, positions, block_table, 2, slots, 16)
    assert slots.tolist() == [80, 81, 82, 9 * 16 + 1, -1, -1]


@pytest.mark.parametrize("window", [None, 5])
def test_uniform_speculative_batch_reads_no_host_value(window):
    """A graph's batch with speculative decoding: every request verifies its token and
    3 drafts (4 query tokens), plus a padding request; max_seq_len 0 (the graph's
    static bound) must give dense attention's answer without reading a device value."""
    from vllm_npu_graph.frozen_values import no_host_sync

    seq_lens, query_lens = [4, 17, 40, 0], [4, 4, 4, 0]
    d, bs, scale = 32, 16, 0.2
    kv_cache, block_table, keys, values, q, qsl = build_batch(seq_lens, query_lens, 8, 2, d, bs, torch.float32)
    padded = torch.cat([q, torch.randn(4, 8, d)])  # rows of the padding request
    with no_host_sync():
        out = paged_attention(
            padded, kv_cache, torch.tensor(qsl), torch.tensor(seq_lens), block_table, scale, window, 4, 0
        )
    for r in range(3):
        ref = dense_attention(q[qsl[r] : qsl[r + 1]], keys[r], values[r], seq_lens[r] - 4, scale, window)
        torch.testing.assert_close(out[qsl[r] : qsl[r + 1]], ref, atol=1e-4, rtol=1e-4)
    assert out[q.shape[0] :].abs().max() == 0
