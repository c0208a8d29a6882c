"""Portable Triton kernels for paged attention and the KV-cache write.

Same signatures as `attention_reference` plus a launch table. Every length, offset and
block index is read from device tensors, so a captured graph replays them with no host
update. KV cache: vLLM's logical per-layer view [blocks, kv_heads, block_size, 2*D]
(keys in the first D of the last dim), any strides with a unit last stride.
"""

import torch
import triton
import triton.language as tl

from vllm_npu_graph.kernels.launch import LaunchTable


def _pad(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


@triton.jit
def _kv_write_kernel(
    k_ptr,
    v_ptr,
    kv_ptr,
    slot_ptr,
    num_tokens,
    s_kt,
    s_kh,
    s_vt,
    s_vh,
    s_cb,
    s_ch,
    s_cn,
    HEADS: tl.constexpr,
    HEADS_PAD: tl.constexpr,
    D: tl.constexpr,
    D_PAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    h = tl.arange(0, HEADS_PAD)[:, None]
    d = tl.arange(0, D_PAD)[None, :]
    mask = (h < HEADS) & (d < D)
    for t in range(tl.program_id(0), num_tokens, tl.num_programs(0)):
        slot = tl.load(slot_ptr + t).to(tl.int64)
        if slot >= 0:
            dst = kv_ptr + (slot // BLOCK) * s_cb + (slot % BLOCK) * s_cn + h * s_ch + d
            k = tl.load(k_ptr + t * s_kt + h * s_kh + d, mask=mask)
            v = tl.load(v_ptr + t * s_vt + h * s_vh + d, mask=mask)
            tl.store(dst, k.to(kv_ptr.dtype.element_ty), mask=mask)
            tl.store(dst + D, v.to(kv_ptr.dtype.element_ty), mask=mask)


def write_kv_cache(key, value, kv_cache, slot_mapping, table: LaunchTable) -> None:
    """Triton twin of attention_reference.write_kv_cache (slot -1 = padding)."""
    assert kv_cache.stride(-1) == 1
    n, heads, d = slot_mapping.shape[0], key.shape[1], key.shape[2]
    _kv_write_kernel[table.grid(n, uses_dot=False)](
        key,
        value,
        kv_cache,
        slot_mapping,
        n,
        key.stride(0),
        key.stride(1),
        value.stride(0),
        value.stride(1),
        kv_cache.stride(0),
        kv_cache.stride(1),
        kv_cache.stride(2),
        HEADS=heads,
        HEADS_PAD=triton.next_power_of_2(heads),
        D=d,
        D_PAD=triton.next_power_of_2(d),
        BLOCK=kv_cache.shape[2],
    )


@triton.jit
def _attend_tile(
    q,
    kv_ptr,
    phys,
    sub,
    kv_head,
    s_cb,
    s_ch,
    s_cn,
    kvalid,
    kmask,
    scale,
    m,
    l,
    acc,
    D: tl.constexpr,
    D_PAD: tl.constexpr,
    TILE: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """One KV tile (TILE tokens at offset sub*TILE of a cache block) of online softmax:
    q [M, D_PAD] against its keys; kvalid [TILE] marks slots holding tokens, kmask
    [M, TILE] the allowed pairs."""
    n = sub * TILE + tl.arange(0, TILE)
    d = tl.arange(0, D_PAD)
    base = kv_ptr + phys * s_cb + kv_head * s_ch + n[:, None] * s_cn + d[None, :]
    load_mask = (d[None, :] < D) & kvalid[:, None]
    k = tl.load(base, mask=load_mask, other=0.0)
    v = tl.load(base + D, mask=load_mask, other=0.0)
    if UPCAST:
        s = tl.dot(q.to(tl.float32), tl.trans(k.to(tl.float32)))
    else:
        s = tl.dot(q, tl.trans(k)).to(tl.float32)
    s = tl.where(kmask, s * scale, float("-inf"))
    m_new = tl.maximum(m, tl.max(s, 1))
    p = tl.exp(s - m_new[:, None])
    alpha = tl.exp(m - m_new)
    l = l * alpha + tl.sum(p, 1)
    if UPCAST:
        pv = tl.dot(p, v.to(tl.float32))
    else:
        pv = tl.dot(p.to(v.dtype), v).to(tl.float32)
    acc = acc * alpha[:, None] + pv
    return m_new, l, acc


@triton.jit
def _decode_kernel(
    q_ptr,
    kv_ptr,
    out_ptr,
    bt_ptr,
    seq_lens_ptr,
    qsl_ptr,
    part_ptr,
    stats_ptr,
    num_seqs,
    num_kv_heads,
    scale,
    window,
    s_qt,
    s_qh,
    s_ot,
    s_oh,
    s_cb,
    s_ch,
    s_cn,
    s_bt,
    GROUP: tl.constexpr,
    G_PAD: tl.constexpr,
    D: tl.constexpr,
    D_PAD: tl.constexpr,
    BLOCK: tl.constexpr,
    TILE: tl.constexpr,
    SPLITS: tl.constexpr,
    UPCAST: tl.constexpr,
):
    g = tl.arange(0, G_PAD)
    d = tl.arange(0, D_PAD)
    qmask = (g[:, None] < GROUP) & (d[None, :] < D)
    num_tasks = num_seqs * num_kv_heads * SPLITS
    for task in range(tl.program_id(0), num_tasks, tl.num_programs(0)):
        seq = task // (num_kv_heads * SPLITS)
        kv_head = (task // SPLITS) % num_kv_heads
        split = task % SPLITS
        token = tl.load(qsl_ptr + seq)
        # A padded request has no query token: mask every row (g < 0).
        rows = (g[:, None] < GROUP * (tl.load(qsl_ptr + seq + 1) - token)) & qmask
        seq_len = tl.load(seq_lens_ptr + seq)
        q_heads = kv_head * GROUP + g
        q = tl.load(q_ptr + token * s_qt + q_heads[:, None] * s_qh + d[None, :], mask=rows, other=0.0)
        m = tl.full([G_PAD], -1e30, tl.float32)
        l = tl.zeros([G_PAD], tl.float32)
        acc = tl.zeros([G_PAD, D_PAD], tl.float32)
        num_blocks = tl.cdiv(seq_len, BLOCK)
        window_first = tl.where(window > 0, tl.maximum(seq_len - window, 0) // BLOCK, 0)
        per_split = tl.cdiv(num_blocks - window_first, SPLITS)
        first = window_first + split * per_split
        last = tl.minimum(first + per_split, num_blocks)
        for j in range(first, last):
            phys = tl.load(bt_ptr + seq * s_bt + j).to(tl.int64)
            for sub in range(BLOCK // TILE):
                kpos = j * BLOCK + sub * TILE + tl.arange(0, TILE)
                kvalid = kpos < seq_len
                kmask = (kvalid & ((kpos > seq_len - 1 - window) | (window <= 0)))[None, :]
                m, l, acc = _attend_tile(
                    q,
                    kv_ptr,
                    phys,
                    sub,
                    kv_head,
                    s_cb,
                    s_ch,
                    s_cn,
                    kvalid,
                    kmask,
                    scale,
                    m,
                    l,
                    acc,
                    D,
                    D_PAD,
                    TILE,
                    UPCAST,
                )
        if SPLITS == 1:
            out = tl.where(l[:, None] > 0, acc / tl.where(l > 0, l, 1.0)[:, None], 0.0)
            tl.store(
                out_ptr + token * s_ot + q_heads[:, None] * s_oh + d[None, :],
                out.to(out_ptr.dtype.element_ty),
                mask=rows,
            )
        else:
            row = (seq * num_kv_heads + kv_head) * SPLITS + split
            tl.store(part_ptr + (row * G_PAD + g[:, None]) * D_PAD + d[None, :], acc)
            tl.store(stats_ptr + (row * G_PAD + g) * 2, m)
            tl.store(stats_ptr + (row * G_PAD + g) * 2 + 1, l)


@triton.jit
def _decode_reduce_kernel(
    out_ptr,
    qsl_ptr,
    part_ptr,
    stats_ptr,
    num_seqs,
    num_kv_heads,
    s_ot,
    s_oh,
    GROUP: tl.constexpr,
    G_PAD: tl.constexpr,
    D: tl.constexpr,
    D_PAD: tl.constexpr,
    SPLITS: tl.constexpr,
):
    """Combines the split-KV partials (acc, max, sum) of one (seq, kv_head)."""
    g = tl.arange(0, G_PAD)
    d = tl.arange(0, D_PAD)
    for task in range(tl.program_id(0), num_seqs * num_kv_heads, tl.num_programs(0)):
        seq = task // num_kv_heads
        kv_head = task % num_kv_heads
        token = tl.load(qsl_ptr + seq)
        num_q = tl.load(qsl_ptr + seq + 1) - token
        m = tl.full([G_PAD], -1e30, tl.float32)
        for s in range(SPLITS):
            m = tl.maximum(m, tl.load(stats_ptr + ((task * SPLITS + s) * G_PAD + g) * 2))
        l = tl.zeros([G_PAD], tl.float32)
        acc = tl.zeros([G_PAD, D_PAD], tl.float32)
        for s in range(SPLITS):
            row = task * SPLITS + s
            scale = tl.exp(tl.load(stats_ptr + (row * G_PAD + g) * 2) - m)
            l += tl.load(stats_ptr + (row * G_PAD + g) * 2 + 1) * scale
            acc += tl.load(part_ptr + (row * G_PAD + g[:, None]) * D_PAD + d[None, :]) * scale[:, None]
        out = tl.where(l[:, None] > 0, acc / tl.where(l > 0, l, 1.0)[:, None], 0.0)
        mask = (g[:, None] < GROUP * num_q) & (g[:, None] < GROUP) & (d[None, :] < D)
        tl.store(
            out_ptr + token * s_ot + (kv_head * GROUP + g[:, None]) * s_oh + d[None, :],
            out.to(out_ptr.dtype.element_ty),
            mask=mask,
        )


@triton.jit
def _prefill_kernel(
    q_ptr,
    kv_ptr,
    out_ptr,
    bt_ptr,
    seq_lens_ptr,
    qsl_ptr,
    num_seqs,
    num_kv_heads,
    m_blocks,
    scale,
    window,
    s_qt,
    s_qh,
    s_ot,
    s_oh,
    s_cb,
    s_ch,
    s_cn,
    s_bt,
    GROUP: tl.constexpr,
    G_PAD: tl.constexpr,
    D: tl.constexpr,
    D_PAD: tl.constexpr,
    BLOCK: tl.constexpr,
    TOKENS: tl.constexpr,
    TILE: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """One task per (request, KV head, block of TOKENS query tokens). Its rows are the
    TOKENS x G_PAD (token, query head of the group) pairs, so each KV tile is loaded
    once for the whole GQA group. q and out move as [TOKENS, G_PAD, D_PAD] blocks
    reshaped to and from those rows: a strided block per task, where row-indexed
    pointers (token = row // G_PAD) become scalar loops on Ascend."""
    r = tl.arange(0, TOKENS * G_PAD)
    g = r % G_PAD
    tok3 = tl.arange(0, TOKENS)[:, None, None]
    g3 = tl.arange(0, G_PAD)[None, :, None]
    d3 = tl.arange(0, D_PAD)[None, None, :]
    for task in range(tl.program_id(0), num_seqs * num_kv_heads * m_blocks, tl.num_programs(0)):
        seq = task // (num_kv_heads * m_blocks)
        kv_head = (task // m_blocks) % num_kv_heads
        mb = task % m_blocks
        q_start = tl.load(qsl_ptr + seq)
        q_len = tl.load(qsl_ptr + seq + 1) - q_start
        if mb * TOKENS < q_len:
            seq_len = tl.load(seq_lens_ptr + seq)
            context = seq_len - q_len
            rows = mb * TOKENS + r // G_PAD
            row_ok = (rows < q_len) & (g < GROUP)
            qpos = context + rows
            tok = mb * TOKENS + tok3
            mask3 = (tok < q_len) & (g3 < GROUP) & (d3 < D)
            head3 = kv_head * GROUP + g3
            q = tl.load(q_ptr + (q_start + tok) * s_qt + head3 * s_qh + d3, mask=mask3, other=0.0)
            q = tl.reshape(q, [TOKENS * G_PAD, D_PAD])
            m = tl.full([TOKENS * G_PAD], -1e30, tl.float32)
            l = tl.zeros([TOKENS * G_PAD], tl.float32)
            acc = tl.zeros([TOKENS * G_PAD, D_PAD], tl.float32)
            end = tl.minimum(seq_len, context + (mb + 1) * TOKENS)
            first = tl.where(window > 0, tl.maximum(context + mb * TOKENS - window + 1, 0) // BLOCK, 0)
            for j in range(first, tl.cdiv(end, BLOCK)):
                phys = tl.load(bt_ptr + seq * s_bt + j).to(tl.int64)
                for sub in range(BLOCK // TILE):
                    kpos = j * BLOCK + sub * TILE + tl.arange(0, TILE)
                    kvalid = kpos < seq_len
                    kmask = (kpos[None, :] <= qpos[:, None]) & kvalid[None, :] & row_ok[:, None]
                    kmask = kmask & ((kpos[None, :] > qpos[:, None] - window) | (window <= 0))
                    m, l, acc = _attend_tile(
                        q,
                        kv_ptr,
                        phys,
                        sub,
                        kv_head,
                        s_cb,
                        s_ch,
                        s_cn,
                        kvalid,
                        kmask,
                        scale,
                        m,
                        l,
                        acc,
                        D,
                        D_PAD,
                        TILE,
                        UPCAST,
                    )
            out = tl.where(l[:, None] > 0, acc / tl.where(l > 0, l, 1.0)[:, None], 0.0)
            tl.store(
                out_ptr + (q_start + tok) * s_ot + head3 * s_oh + d3,
                tl.reshape(out, [TOKENS, G_PAD, D_PAD]).to(out_ptr.dtype.element_ty),
                mask=mask3,
            )


def decode_splits(table: LaunchTable, tasks: int, block: int, bound: int) -> int:
    """KV splits for a decode batch of `tasks` (sequence, KV head) pairs: enough to fill
    the device when few tasks could hold a long context. Chosen from the static bound
    on the context (the block table's width), never from the batch's live lengths: a
    graph freezes this choice, and a short sequence merely leaves splits empty."""
    cap = table.cube_programs or table.fill_programs
    if tasks >= cap or bound <= 4 * block:
        return 1
    return min(table.max_kv_splits, triton.cdiv(cap, tasks), triton.cdiv(bound, block))


def paged_attention(
    query,
    kv_cache,
    query_start_loc,
    seq_lens,
    block_table,
    scale,
    sliding_window=None,
    max_query_len=None,
    *,
    table: LaunchTable,
    max_seq_len: int | None = None,
):
    """Triton twin of attention_reference.paged_attention. Decode-only batches
    (max_query_len == 1) use the decode kernel, split over the KV length when the
    batch is too small to fill the device; anything else the prefill kernel.
    max_seq_len is unused: decode reads lengths on the device (see decode_splits)."""
    assert kv_cache.stride(-1) == 1
    out = torch.zeros_like(query)
    num_seqs = seq_lens.shape[0]
    num_q_heads, d = query.shape[1], query.shape[2]
    num_kv_heads, block = kv_cache.shape[1], kv_cache.shape[2]
    group = num_q_heads // num_kv_heads
    window = sliding_window or 0
    if max_query_len is None:
        max_query_len = int((query_start_loc[1:] - query_start_loc[:-1]).max()) if num_seqs else 0
    if num_seqs == 0 or max_query_len == 0:
        return out
    common = (
        scale,
        window,
        query.stride(0),
        query.stride(1),
        out.stride(0),
        out.stride(1),
        kv_cache.stride(0),
        kv_cache.stride(1),
        kv_cache.stride(2),
        block_table.stride(0),
    )
    if max_query_len == 1:
        tasks = num_seqs * num_kv_heads
        splits = decode_splits(table, tasks, block, block_table.shape[1] * block)
        g_pad, d_pad = _pad(group), _pad(d)
        part = stats = out
        if splits > 1:
            part = torch.empty(tasks * splits * g_pad * d_pad, dtype=torch.float32, device=query.device)
            stats = torch.empty(tasks * splits * g_pad * 2, dtype=torch.float32, device=query.device)
        _decode_kernel[table.grid(tasks * splits, uses_dot=True)](
            query,
            kv_cache,
            out,
            block_table,
            seq_lens,
            query_start_loc,
            part,
            stats,
            num_seqs,
            num_kv_heads,
            *common,
            GROUP=group,
            G_PAD=g_pad,
            D=d,
            D_PAD=d_pad,
            BLOCK=block,
            TILE=table.kv_tile(block, g_pad, d_pad, kv_cache.element_size()),
            SPLITS=splits,
            UPCAST=table.upcast_dot,
            **table.dot_options(),
        )
        if splits > 1:
            _decode_reduce_kernel[table.grid(tasks, uses_dot=False)](
                out,
                query_start_loc,
                part,
                stats,
                num_seqs,
                num_kv_heads,
                out.stride(0),
                out.stride(1),
                GROUP=group,
                G_PAD=g_pad,
                D=d,
                D_PAD=d_pad,
                SPLITS=splits,
            )
        return out
    g_pad = triton.next_power_of_2(group)
    tokens = max(1, table.prefill_block_m // g_pad)  # rows per tile stay prefill_block_m
    rows = max(16, tokens * g_pad)  # tl.dot needs 16 rows
    tokens = rows // g_pad
    m_blocks = triton.cdiv(max_query_len, tokens)
    _prefill_kernel[table.grid(num_seqs * num_kv_heads * m_blocks, uses_dot=True)](
        query,
        kv_cache,
        out,
        block_table,
        seq_lens,
        query_start_loc,
        num_seqs,
        num_kv_heads,
        m_blocks,
        *common,
        GROUP=group,
        G_PAD=g_pad,
        D=d,
        D_PAD=_pad(d),
        BLOCK=block,
        TOKENS=tokens,
        TILE=table.kv_tile(block, rows, _pad(d), kv_cache.element_size()),
        UPCAST=table.upcast_dot,
        **table.dot_options(),
    )
    return out
