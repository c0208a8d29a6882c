"""The torch reference paged attention and KV-cache write against dense attention."""

import math

import pytest
import torch

from vllm_npu_graph.kernels.attention_reference import paged_attention, write_kv_cache
from vllm_npu_graph.kernels.runner_reference import compute_slot_mapping


def dense_attention(q, k, v, context_len, scale, window=None):
    """q [Q, Hq, D] are the last Q tokens of a sequence whose k/v are [L, Hkv, D]."""
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q.double(), k.double()) * scale
    qpos = torch.arange(context_len, context_len + q.shape[0])[:, None]
    kpos = torch.arange(k.shape[0])[None, :]
    mask = kpos <= qpos
    if window is not None:
        mask &= kpos > qpos - window
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v.double()).to(q.dtype)


def build_batch(seq_lens, query_lens, hq, hkv, d, block_size, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    num_blocks = sum(math.ceil(s / block_size) for s in seq_lens) + 3
    kv_cache = torch.zeros(num_blocks, block_size, hkv, 2 * d, dtype=dtype).transpose(1, 2)  # logical view
    perm = torch.randperm(num_blocks - 1, generator=g) + 1  # scattered blocks, block 0 unused
    max_blocks = max(math.ceil(s / block_size) for s in seq_lens)
    block_table = torch.zeros(len(seq_lens), max_blocks, dtype=torch.int32)
    keys, values, queries, qsl, used = [], [], [], [0], 0
    for r, (s, ql) in enumerate(zip(seq_lens, query_lens)):
        nb = math.ceil(s / block_size)
        block_table[r, :nb] = perm[used : used + nb].int()
        used += nb
        k = torch.randn(s, hkv, d, generator=g).to(dtype)
        v = torch.randn(s, hkv, d, generator=g).to(dtype)
        pos = torch.arange(s)
        slots = block_table[r, pos // block_size].long() * block_size + pos % block_size
        write_kv_cache(k, v, kv_cache, slots)
        keys.append(k)
        values.append(v)
        queries.append(torch.randn(ql, hq, d, generator=g).to(dtype))
        qsl.append(qsl[-1] + ql)
    return kv_cache, block_table, keys, values, torch.cat(queries), qsl


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
