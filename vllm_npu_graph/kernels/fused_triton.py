"""Portable Triton kernels of the fused decoder ops (same signatures as
`fused_reference`, plus a launch table). Vector-only: rows loop inside each program."""

import torch
import triton
import triton.language as tl

from vllm_npu_graph.kernels.launch import LaunchTable


@triton.jit
def _norm_row(x_ptr, r_ptr, sum_ptr, row, s_x, s_r, s_s, c, mask, w, n, eps, HAS_RESIDUAL: tl.constexpr):
    """One row's RMSNorm in fp32 (x + residual first, stored in the model's dtype, if given)."""
    x = tl.load(x_ptr + row * s_x + c, mask=mask, other=0.0).to(tl.float32)
    if HAS_RESIDUAL:
        x = x + tl.load(r_ptr + row * s_r + c, mask=mask, other=0.0).to(tl.float32)
        x = x.to(sum_ptr.dtype.element_ty)
        tl.store(sum_ptr + row * s_s + c, x, mask=mask)
        x = x.to(tl.float32)
    return x * (1.0 / tl.sqrt(tl.sum(x * x, 0) / n + eps)) * w


@triton.jit
def _rms_norm_kernel(
    x_ptr,
    r_ptr,
    w_ptr,
    y_ptr,
    sum_ptr,
    rows,
    n,
    s_x,
    s_r,
    s_y,
    s_s,
    eps,
    HAS_RESIDUAL: tl.constexpr,
    N_PAD: tl.constexpr,
):
    c = tl.arange(0, N_PAD)
    mask = c < n
    w = tl.load(w_ptr + c, mask=mask, other=0.0).to(tl.float32)
    for row in range(tl.program_id(0), rows, tl.num_programs(0)):
        y = _norm_row(x_ptr, r_ptr, sum_ptr, row, s_x, s_r, s_s, c, mask, w, n, eps, HAS_RESIDUAL)
        tl.store(y_ptr + row * s_y + c, y.to(y_ptr.dtype.element_ty), mask=mask)


def rms_norm(x, weight, eps, *, table: LaunchTable):
    x2 = x.reshape(-1, x.shape[-1])
    y = torch.empty_like(x2)
    _rms_norm_kernel[table.grid(x2.shape[0], uses_dot=False)](
        x2,
        x2,
        weight,
        y,
        y,
        x2.shape[0],
        x2.shape[1],
        x2.stride(0),
        0,
        y.stride(0),
        0,
        eps,
        HAS_RESIDUAL=False,
        N_PAD=triton.next_power_of_2(x2.shape[1]),
    )
    return y.reshape(x.shape)


def add_rms_norm(x, residual, weight, eps, *, table: LaunchTable):
    x2, r2 = x.reshape(-1, x.shape[-1]), residual.reshape(-1, x.shape[-1])
    y, summed = torch.empty_like(x2), torch.empty_like(x2)
    _rms_norm_kernel[table.grid(x2.shape[0], uses_dot=False)](
        x2,
        r2,
        weight,
        y,
        summed,
        x2.shape[0],
        x2.shape[1],
        x2.stride(0),
        r2.stride(0),
        y.stride(0),
        summed.stride(0),
        eps,
        HAS_RESIDUAL=True,
        N_PAD=triton.next_power_of_2(x2.shape[1]),
    )
    return y.reshape(x.shape), summed.reshape(x.shape)


@triton.jit
def _swiglu_kernel(x_ptr, y_ptr, rows, n, s_x, s_y, BLOCK: tl.constexpr):
    for row in range(tl.program_id(0), rows, tl.num_programs(0)):
        for start in range(0, n, BLOCK):
            c = start + tl.arange(0, BLOCK)
            mask = c < n
            gate = tl.load(x_ptr + row * s_x + c, mask=mask, other=0.0).to(tl.float32)
            up = tl.load(x_ptr + row * s_x + n + c, mask=mask, other=0.0).to(tl.float32)
            y = gate / (1.0 + tl.exp(-gate)) * up
            tl.store(y_ptr + row * s_y + c, y.to(y_ptr.dtype.element_ty), mask=mask)


def swiglu(x, *, table: LaunchTable):
    x2 = x.reshape(-1, x.shape[-1])
    n = x2.shape[1] // 2
    y = torch.empty(x2.shape[0], n, dtype=x.dtype, device=x.device)
    _swiglu_kernel[table.grid(x2.shape[0], uses_dot=False)](
        x2,
        y,
        x2.shape[0],
        n,
        x2.stride(0),
        y.stride(0),
        BLOCK=min(1024, triton.next_power_of_2(n)),
    )
    return y.reshape(*x.shape[:-1], n)


@triton.jit
def _pieces(
    base,
    offs,
    rows,
    HALF: tl.constexpr,
    HALF_PAD: tl.constexpr,
    ROT: tl.constexpr,
    D: tl.constexpr,
    TAIL_PAD: tl.constexpr,
):
    """Loads the three pieces of the heads at base + offs ([HB, 1]; rows masks them): the
    rotary halves [0, ROT/2), [ROT/2, ROT) and the unrotated tail [ROT, D), as fp32."""
    c = tl.arange(0, HALF_PAD)[None, :]
    x1 = tl.load(base + offs + c, mask=rows & (c < HALF), other=0.0).to(tl.float32)
    x2 = tl.load(base + offs + HALF + c, mask=rows & (c < HALF), other=0.0).to(tl.float32)
    if ROT < D:
        e = tl.arange(0, TAIL_PAD)[None, :]
        xt = tl.load(base + offs + ROT + e, mask=rows & (e < D - ROT), other=0.0).to(tl.float32)
    else:
        xt = tl.zeros([1, TAIL_PAD], tl.float32)
    return x1, x2, xt


@triton.jit
def _store_pieces(
    base,
    offs,
    rows,
    y1,
    y2,
    yt,
    HALF: tl.constexpr,
    HALF_PAD: tl.constexpr,
    ROT: tl.constexpr,
    D: tl.constexpr,
    TAIL_PAD: tl.constexpr,
):
    """Stores the pieces `_pieces` loads, in base's dtype."""
    c = tl.arange(0, HALF_PAD)[None, :]
    ty = base.dtype.element_ty
    tl.store(base + offs + c, y1.to(ty), mask=rows & (c < HALF))
    tl.store(base + offs + HALF + c, y2.to(ty), mask=rows & (c < HALF))
    if ROT < D:
        e = tl.arange(0, TAIL_PAD)[None, :]
        tl.store(base + offs + ROT + e, yt.to(ty), mask=rows & (e < D - ROT))


@triton.jit
def _head_norm(x, inv, w, rows, dtype_ptr):
    """Per-head RMSNorm on the selected rows, rounded like the unfused path (which
    writes the normed head in the input dtype)."""
    return tl.where(rows, (x * inv * w).to(dtype_ptr.dtype.element_ty).to(tl.float32), x)


@triton.jit
def _qkv_rope_kernel(
    qkv_ptr,
    pos_ptr,
    cache_ptr,
    qw_ptr,
    kw_ptr,
    q_ptr,
    k_ptr,
    v_ptr,
    kv_ptr,
    slot_ptr,
    tokens,
    num_slots,
    s_t,
    s_cache,
    s_q,
    s_k,
    s_v,
    s_cb,
    s_ch,
    s_cn,
    eps,
    HQ: tl.constexpr,
    HKV: tl.constexpr,
    D: tl.constexpr,
    HALF_PAD: tl.constexpr,
    TAIL_PAD: tl.constexpr,
    HB: tl.constexpr,
    ROT: tl.constexpr,
    HAS_Q_NORM: tl.constexpr,
    HAS_K_NORM: tl.constexpr,
    WRITE_KV: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """One task per (token, block of HB heads) over the q, k and v heads: split, per-head
    norm, RoPE; with WRITE_KV, k and v heads also go to their KV-cache slot (-1 = padding).
    Rotate-half pairs feature i with i + ROT/2, so each head is handled as its two
    rotary halves (plus the unrotated tail): every access stays a strided block, where
    gathering each feature's partner is a scalar loop on Ascend."""
    HALF: tl.constexpr = ROT // 2
    heads = HQ + 2 * HKV
    blocks = tl.cdiv(heads, HB)
    everywhere = tl.full([1, 1], 1, tl.int1)
    if HAS_Q_NORM:
        qw1, qw2, qwt = _pieces(qw_ptr, 0, everywhere, HALF, HALF_PAD, ROT, D, TAIL_PAD)
    if HAS_K_NORM:
        kw1, kw2, kwt = _pieces(kw_ptr, 0, everywhere, HALF, HALF_PAD, ROT, D, TAIL_PAD)
    c = tl.arange(0, HALF_PAD)[None, :]
    for task in range(tl.program_id(0), tokens * blocks, tl.num_programs(0)):
        t = task // blocks
        h = (task % blocks) * HB + tl.arange(0, HB)[:, None]
        is_q = h < HQ
        is_k = (h >= HQ) & (h < HQ + HKV)
        is_v = (h >= HQ + HKV) & (h < heads)
        x1, x2, xt = _pieces(qkv_ptr, t * s_t + h * D, h < heads, HALF, HALF_PAD, ROT, D, TAIL_PAD)
        if HAS_Q_NORM or HAS_K_NORM:
            inv = 1.0 / tl.sqrt((tl.sum(x1 * x1, 1) + tl.sum(x2 * x2, 1) + tl.sum(xt * xt, 1)) / D + eps)[:, None]
            if HAS_Q_NORM:
                x1, x2 = _head_norm(x1, inv, qw1, is_q, qkv_ptr), _head_norm(x2, inv, qw2, is_q, qkv_ptr)
                xt = _head_norm(xt, inv, qwt, is_q, qkv_ptr)
            if HAS_K_NORM:
                x1, x2 = _head_norm(x1, inv, kw1, is_k, qkv_ptr), _head_norm(x2, inv, kw2, is_k, qkv_ptr)
                xt = _head_norm(xt, inv, kwt, is_k, qkv_ptr)
        pos = tl.load(pos_ptr + t).to(tl.int64)
        cos = tl.load(cache_ptr + pos * s_cache + c, mask=c < HALF, other=1.0).to(tl.float32)
        sin = tl.load(cache_ptr + pos * s_cache + HALF + c, mask=c < HALF, other=0.0).to(tl.float32)
        rotated = h < HQ + HKV
        y1 = tl.where(rotated, x1 * cos - x2 * sin, x1)
        y2 = tl.where(rotated, x2 * cos + x1 * sin, x2)
        _store_pieces(q_ptr, t * s_q + h * D, is_q, y1, y2, xt, HALF, HALF_PAD, ROT, D, TAIL_PAD)
        _store_pieces(k_ptr, t * s_k + (h - HQ) * D, is_k, y1, y2, xt, HALF, HALF_PAD, ROT, D, TAIL_PAD)
        _store_pieces(v_ptr, t * s_v + (h - HQ - HKV) * D, is_v, y1, y2, xt, HALF, HALF_PAD, ROT, D, TAIL_PAD)
        if WRITE_KV:
            slot = tl.load(slot_ptr + t, mask=t < num_slots, other=-1).to(tl.int64)
            if slot >= 0:
                row = (slot // BLOCK) * s_cb + (slot % BLOCK) * s_cn
                _store_pieces(kv_ptr, row + (h - HQ) * s_ch, is_k, y1, y2, xt, HALF, HALF_PAD, ROT, D, TAIL_PAD)
                _store_pieces(
                    kv_ptr, row + (h - HQ - HKV) * s_ch + D, is_v, y1, y2, xt, HALF, HALF_PAD, ROT, D, TAIL_PAD
                )


def qkv_rope(
    qkv,
    positions,
    cos_sin_cache,
    num_heads,
    num_kv_heads,
    head_size,
    q_norm_weight=None,
    k_norm_weight=None,
    eps=1e-6,
    kv_cache=None,
    slot_mapping=None,
    *,
    table: LaunchTable,
):
    t = qkv.shape[0]
    q = torch.empty(t, num_heads, head_size, dtype=qkv.dtype, device=qkv.device)
    k = torch.empty(t, num_kv_heads, head_size, dtype=qkv.dtype, device=qkv.device)
    v = torch.empty(t, num_kv_heads, head_size, dtype=qkv.dtype, device=qkv.device)
    write = kv_cache is not None
    cache_strides = kv_cache.stride()[:3] if write else (0, 0, 0)
    heads = num_heads + 2 * num_kv_heads
    rot = cos_sin_cache.shape[-1]
    head_block = min(8, triton.next_power_of_2(heads))
    _qkv_rope_kernel[table.grid(t * triton.cdiv(heads, head_block), uses_dot=False)](
        qkv,
        positions,
        cos_sin_cache,
        q_norm_weight if q_norm_weight is not None else qkv,
        k_norm_weight if k_norm_weight is not None else qkv,
        q,
        k,
        v,
        kv_cache if write else qkv,
        slot_mapping if write else positions,
        t,
        slot_mapping.shape[0] if write else 0,
        qkv.stride(0),
        cos_sin_cache.stride(0),
        q.stride(0),
        k.stride(0),
        v.stride(0),
        *cache_strides,
        eps,
        HQ=num_heads,
        HKV=num_kv_heads,
        D=head_size,
        HALF_PAD=triton.next_power_of_2(rot // 2),
        TAIL_PAD=triton.next_power_of_2(max(1, head_size - rot)),
        HB=head_block,
        ROT=rot,
        HAS_Q_NORM=q_norm_weight is not None,
        HAS_K_NORM=k_norm_weight is not None,
        WRITE_KV=write,
        BLOCK=kv_cache.shape[2] if write else 1,
    )
    return q, k, v
