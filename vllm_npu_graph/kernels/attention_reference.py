"""Torch reference implementations of paged attention and the KV-cache write.

The per-layer KV cache is vLLM's logical view [num_blocks, num_kv_heads, block_size,
2 * head_size] (keys in the first half of the last dim, values in the second).
These functions are the correctness oracle for the Triton kernels and the host
target's default attention path.
"""

import torch
import torch.nn.functional as F


def _token_major(kv_cache: torch.Tensor) -> torch.Tensor:
    """[blocks, heads, block_size, 2D] -> [blocks, block_size, heads, 2D] (a view)."""
    return kv_cache.transpose(1, 2)


def write_kv_cache(
    key: torch.Tensor, value: torch.Tensor, kv_cache: torch.Tensor, slot_mapping: torch.Tensor
) -> None:
    """Store each token's key/value at its slot; slot -1 marks a padding token."""
    head_size = key.shape[-1]
    n = slot_mapping.shape[0]
    slots = slot_mapping.long()
    valid = slots >= 0
    if not bool(valid.all()):
        slots, key, value = slots[valid], key[:n][valid], value[:n][valid]
    else:
        key, value = key[:n], value[:n]
    block_size = kv_cache.shape[2]
    cache = _token_major(kv_cache)
    blocks, offsets = slots // block_size, slots % block_size
    cache[blocks, offsets, :, :head_size] = key.to(cache.dtype)
    cache[blocks, offsets, :, head_size:] = value.to(cache.dtype)


def gather_kv(
    kv_cache: torch.Tensor, block_table: torch.Tensor, seq_lens: torch.Tensor, max_seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of each sequence, padded to max_seq_len: [B, L, H, D] each."""
    block_size = kv_cache.shape[2]
    num_blocks = -(-max_seq_len // block_size)
    cache = _token_major(kv_cache)[block_table[:, :num_blocks].long()]  # [B, nb, bs, H, 2D]
    cache = cache.flatten(1, 2)[:, :max_seq_len]
    head_size = kv_cache.shape[-1] // 2
    return cache[..., :head_size], cache[..., head_size:]


def _attend(q, k, v, allowed, scale):
    """q [B, Hq, Q, D], k/v [B, Hkv, L, D], allowed [B, 1, Q, L] -> [B, Hq, Q, D] (fp32 softmax)."""
    return F.scaled_dot_product_attention(
        q.float(), k.float(), v.float(), attn_mask=allowed, scale=scale,
        enable_gqa=q.shape[1] != k.shape[1],
    ).to(q.dtype)


def paged_attention(
    query: torch.Tensor,
    kv_cache: torch.Tensor,
    query_start_loc: torch.Tensor,
    seq_lens: torch.Tensor,
    block_table: torch.Tensor,
    scale: float,
    sliding_window: int | None = None,
    max_query_len: int | None = None,
) -> torch.Tensor:
    """Causal attention of each request's new tokens over its cached sequence.

    query: [T, Hq, D] for the T real tokens, request r owning tokens
    query_start_loc[r]:query_start_loc[r+1], which are the last tokens of its seq_lens[r].
    Decode requests (one new token) are attended as one batch; longer queries
    (prefill, chunked prefill) one request at a time. Returns [T, Hq, D].
    (max_query_len is a hint the Triton version uses; the reference reads lengths.)
    """
    out = torch.zeros_like(query)
    query_start_loc, seq_lens = query_start_loc.tolist(), seq_lens.tolist()
    num_reqs = len(seq_lens)
    query_lens = [query_start_loc[r + 1] - query_start_loc[r] for r in range(num_reqs)]
    decodes = [r for r in range(num_reqs) if query_lens[r] == 1 and seq_lens[r] > 0]
    device = query.device

    if decodes:
        rows = torch.tensor(decodes, device=device)
        tokens = torch.tensor([query_start_loc[r] for r in decodes], device=device)
        lens = torch.tensor([seq_lens[r] for r in decodes], device=device)
        max_len = max(seq_lens[r] for r in decodes)
        k, v = gather_kv(kv_cache, block_table[rows], lens, max_len)
        pos = torch.arange(max_len, device=device)
        allowed = pos[None, :] < lens[:, None]
        if sliding_window is not None:
            allowed &= pos[None, :] > (lens[:, None] - 1 - sliding_window)
        q = query[tokens].unsqueeze(2)  # [B, Hq, 1, D]
        o = _attend(q, k.transpose(1, 2), v.transpose(1, 2), allowed[:, None, None, :], scale)
        out[tokens] = o.squeeze(2)

    for r in range(num_reqs):
        if query_lens[r] <= 1:
            continue
        start, qlen, slen = query_start_loc[r], query_lens[r], seq_lens[r]
        k, v = gather_kv(kv_cache, block_table[r : r + 1], None, slen)
        qpos = torch.arange(slen - qlen, slen, device=device)[:, None]
        kpos = torch.arange(slen, device=device)[None, :]
        allowed = kpos <= qpos
        if sliding_window is not None:
            allowed &= kpos > qpos - sliding_window
        q = query[start : start + qlen].transpose(0, 1)[None]  # [1, Hq, Q, D]
        o = _attend(q, k.transpose(1, 2), v.transpose(1, 2), allowed[None, None], scale)
        out[start : start + qlen] = o[0].transpose(0, 1)
    return out
