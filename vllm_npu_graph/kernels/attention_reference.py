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


def write_kv_cache(key: torch.Tensor, value: torch.Tensor, kv_cache: torch.Tensor, slot_mapping: torch.Tensor) -> None:
    """Store each token's key/value at its slot; slot -1 marks a padding token. No host
    read: a padding row repeats the first real row's write (same slot, same data), or,
    when no row is real, rewrites slot 0 with what it holds."""
    head_size = key.shape[-1]
    n = slot_mapping.shape[0]
    if n == 0:
        return
    valid = slot_mapping >= 0
    first_real = valid.int().argmax()
    rows = torch.where(valid, torch.arange(n, device=valid.device), first_real)
    slots = slot_mapping.long()[rows].clamp(min=0)
    block_size = kv_cache.shape[2]
    cache = _token_major(kv_cache)
    blocks, offsets = slots // block_size, slots % block_size
    any_real = valid.any()
    old = cache[blocks, offsets]
    cache[blocks, offsets, :, :head_size] = torch.where(any_real, key[:n][rows].to(cache.dtype), old[..., :head_size])
    cache[blocks, offsets, :, head_size:] = torch.where(any_real, value[:n][rows].to(cache.dtype), old[..., head_size:])


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
        q.float(),
        k.float(),
        v.float(),
        attn_mask=allowed,
        scale=scale,
        enable_gqa=q.shape[1] != k.shape[1],
    ).to(q.dtype)


def decode_attention(query, kv_cache, query_start_loc, seq_lens, block_table, scale, sliding_window, bound, q_len=1):
    """Every request's q_len query tokens (one decode token, or a speculative step's
    token and drafts) over its first seq_lens[r] cached tokens, causally, with no host
    read: keys are gathered up to `bound` tokens (a static bound in a graph) and masked
    by the device lengths. Requests without exactly q_len query tokens (padding) and
    rows of no request stay zero."""
    out = torch.zeros_like(query)
    num_reqs = seq_lens.shape[0]
    if num_reqs == 0:
        return out
    steps = torch.arange(q_len, device=query.device)
    has_query = (query_start_loc[1 : num_reqs + 1] - query_start_loc[:num_reqs] == q_len) & (seq_lens > 0)
    rows = (query_start_loc[:num_reqs, None].long() + steps).clamp(max=query.shape[0] - 1)  # [R, Q]
    lens = seq_lens.long()
    k, v = gather_kv(kv_cache, block_table, lens, bound)
    pos = torch.arange(k.shape[1], device=query.device)
    qpos = lens[:, None] - q_len + steps  # each query token's position
    allowed = (pos <= qpos[..., None]) & has_query[:, None, None]  # [R, Q, L]
    if sliding_window is not None:
        allowed &= pos > qpos[..., None] - sliding_window
    allowed[..., 0] |= ~has_query[:, None]  # keep softmax finite on padding rows; they are dropped below
    o = _attend(query[rows].transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), allowed[:, None], scale)
    o = o.transpose(1, 2) * has_query[:, None, None, None]  # [R, Q, Hq, D]
    # index_add: a padding request's clamped row may be a real request's row; it adds 0.
    return out.index_add_(0, rows.flatten(), o.flatten(0, 1))


def paged_attention(
    query: torch.Tensor,
    kv_cache: torch.Tensor,
    query_start_loc: torch.Tensor,
    seq_lens: torch.Tensor,
    block_table: torch.Tensor,
    scale: float,
    sliding_window: int | None = None,
    max_query_len: int | None = None,
    max_seq_len: int = 0,
) -> torch.Tensor:
    """Causal attention of each request's new tokens over its cached sequence.

    query: [T, Hq, D], request r owning tokens query_start_loc[r]:query_start_loc[r+1],
    which are the last tokens of its seq_lens[r]; rows of no request are zero.
    Decode batches (max_query_len == 1) and graphs (max_seq_len == 0: a uniform batch
    of max_query_len tokens per request, bounded by the block table's width) read no
    host value; otherwise max_seq_len bounds the keys. Other batches (prefill, chunked
    prefill, uneven speculative steps: eager only) go one request at a time.
    Returns [T, Hq, D].
    """
    if max_query_len is not None and (max_query_len == 1 or max_seq_len == 0):
        bound = max_seq_len or block_table.shape[1] * kv_cache.shape[2]
        return decode_attention(
            query, kv_cache, query_start_loc, seq_lens, block_table, scale, sliding_window, bound, max_query_len
        )
    out = torch.zeros_like(query)
    query_start_loc, seq_lens = query_start_loc.tolist(), seq_lens.tolist()
    num_reqs = len(seq_lens)
    device = query.device
    for r in range(num_reqs):
        start, qlen, slen = query_start_loc[r], query_start_loc[r + 1] - query_start_loc[r], seq_lens[r]
        if qlen == 0 or slen == 0:
            continue
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
