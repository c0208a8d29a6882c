"""Paged-attention test batches: scattered KV blocks filled by the reference write, and
dense attention over the same tokens to compare against."""

import math

import torch

from vllm_npu_graph.kernels.attention_reference import write_kv_cache


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
