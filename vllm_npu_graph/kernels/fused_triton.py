"""Portable Triton kernels of the fused decoder ops (same signatures as
`fused_reference`, plus a launch table). Vector-only: rows loop inside each program."""

import torch
import triton
import triton.language as tl

from vllm_npu_graph.kernels.launch import LaunchTable


@triton.jit
def _rms_norm_kernel(x_ptr, r_ptr, w_ptr, y_ptr, sum_ptr, rows, n, s_x, s_r, s_y, s_s, eps,
                     HAS_RESIDUAL: tl.constexpr, N_PAD: tl.constexpr):
    c = tl.arange(0, N_PAD)
    mask = c < n
    w = tl.load(w_ptr + c, mask=mask, other=0.0).to(tl.float32)
    for row in range(tl.program_id(0), rows, tl.num_programs(0)):
        x = tl.load(x_ptr + row * s_x + c, mask=mask, other=0.0).to(tl.float32)
        if HAS_RESIDUAL:
            x = x + tl.load(r_ptr + row * s_r + c, mask=mask, other=0.0).to(tl.float32)
            x = x.to(sum_ptr.dtype.element_ty)
            tl.store(sum_ptr + row * s_s + c, x, mask=mask)
            x = x.to(tl.float32)
        inv = 1.0 / tl.sqrt(tl.sum(x * x, 0) / n + eps)
        tl.store(y_ptr + row * s_y + c, (x * inv * w).to(y_ptr.dtype.element_ty), mask=mask)


def rms_norm(x, weight, eps, *, table: LaunchTable):
    x2 = x.reshape(-1, x.shape[-1])
    y = torch.empty_like(x2)
    _rms_norm_kernel[table.grid(x2.shape[0], uses_dot=False)](
        x2, x2, weight, y, y, x2.shape[0], x2.shape[1], x2.stride(0), 0, y.stride(0), 0, eps,
        HAS_RESIDUAL=False, N_PAD=triton.next_power_of_2(x2.shape[1]),
    )
    return y.reshape(x.shape)


def add_rms_norm(x, residual, weight, eps, *, table: LaunchTable):
    x2, r2 = x.reshape(-1, x.shape[-1]), residual.reshape(-1, x.shape[-1])
    y, summed = torch.empty_like(x2), torch.empty_like(x2)
    _rms_norm_kernel[table.grid(x2.shape[0], uses_dot=False)](
        x2, r2, weight, y, summed, x2.shape[0], x2.shape[1], x2.stride(0), r2.stride(0), y.stride(0),
        summed.stride(0), eps, HAS_RESIDUAL=True, N_PAD=triton.next_power_of_2(x2.shape[1]),
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
        x2, y, x2.shape[0], n, x2.stride(0), y.stride(0), BLOCK=min(1024, triton.next_power_of_2(n)),
    )
    return y.reshape(*x.shape[:-1], n)


@triton.jit
def _qkv_rope_kernel(qkv_ptr, pos_ptr, cache_ptr, qw_ptr, kw_ptr, q_ptr, k_ptr, v_ptr, kv_ptr, slot_ptr,
                     tokens, num_slots, s_t, s_cache, s_q, s_k, s_v, s_cb, s_ch, s_cn, eps,
                     HQ: tl.constexpr, HKV: tl.constexpr, D: tl.constexpr, D_PAD: tl.constexpr,
                     HB: tl.constexpr, ROT: tl.constexpr, HAS_Q_NORM: tl.constexpr, HAS_K_NORM: tl.constexpr,
                     WRITE_KV: tl.constexpr, BLOCK: tl.constexpr):
    """One task per (token, block of HB heads) over the q, k and v heads: split, per-head
    norm, RoPE; with WRITE_KV, k and v heads also go to their KV-cache slot (-1 = padding)."""
    d = tl.arange(0, D_PAD)[None, :]
    in_head = d < D
    half = ROT // 2
    # partner feature for rotate-half: d < half pairs with d + half, and back.
    partner = tl.where(d < half, d + half, d - half)
    rotated = d < ROT
    j = tl.where(d < half, d, d - half)
    heads = HQ + 2 * HKV
    blocks = tl.cdiv(heads, HB)
    if HAS_Q_NORM:
        qw = tl.load(qw_ptr + d, mask=in_head, other=0.0).to(tl.float32)
        qwp = tl.load(qw_ptr + partner, mask=rotated, other=0.0).to(tl.float32)
    if HAS_K_NORM:
        kw = tl.load(kw_ptr + d, mask=in_head, other=0.0).to(tl.float32)
        kwp = tl.load(kw_ptr + partner, mask=rotated, other=0.0).to(tl.float32)
    for task in range(tl.program_id(0), tokens * blocks, tl.num_programs(0)):
        t = task // blocks
        h = (task % blocks) * HB + tl.arange(0, HB)[:, None]
        is_q = h < HQ
        is_k = (h >= HQ) & (h < HQ + HKV)
        is_v = (h >= HQ + HKV) & (h < heads)
        src = qkv_ptr + t * s_t + h * D
        x = tl.load(src + d, mask=(h < heads) & in_head, other=0.0).to(tl.float32)
        xp = tl.load(src + partner, mask=(h < HQ + HKV) & rotated, other=0.0).to(tl.float32)
        if HAS_Q_NORM or HAS_K_NORM:
            inv = 1.0 / tl.sqrt(tl.sum(x * x, 1) / D + eps)[:, None]
            if HAS_Q_NORM:
                # round like the unfused path, which writes the normed head in the input dtype
                x = tl.where(is_q, (x * inv * qw).to(qkv_ptr.dtype.element_ty).to(tl.float32), x)
                xp = tl.where(is_q, (xp * inv * qwp).to(qkv_ptr.dtype.element_ty).to(tl.float32), xp)
            if HAS_K_NORM:
                x = tl.where(is_k, (x * inv * kw).to(qkv_ptr.dtype.element_ty).to(tl.float32), x)
                xp = tl.where(is_k, (xp * inv * kwp).to(qkv_ptr.dtype.element_ty).to(tl.float32), xp)
        pos = tl.load(pos_ptr + t).to(tl.int64)
        cos = tl.load(cache_ptr + pos * s_cache + j, mask=rotated, other=1.0).to(tl.float32)
        sin = tl.load(cache_ptr + pos * s_cache + half + j, mask=rotated, other=0.0).to(tl.float32)
        y = tl.where(rotated & (h < HQ + HKV), tl.where(d < half, x * cos - xp * sin, x * cos + xp * sin), x)
        tl.store(q_ptr + t * s_q + h * D + d, y.to(q_ptr.dtype.element_ty), mask=is_q & in_head)
        tl.store(k_ptr + t * s_k + (h - HQ) * D + d, y.to(k_ptr.dtype.element_ty), mask=is_k & in_head)
        tl.store(v_ptr + t * s_v + (h - HQ - HKV) * D + d, y.to(v_ptr.dtype.element_ty), mask=is_v & in_head)
        if WRITE_KV:
            slot = tl.load(slot_ptr + t, mask=t < num_slots, other=-1).to(tl.int64)
            if slot >= 0:
                row = kv_ptr + (slot // BLOCK) * s_cb + (slot % BLOCK) * s_cn
                tl.store(row + (h - HQ) * s_ch + d, y.to(kv_ptr.dtype.element_ty), mask=is_k & in_head)
                tl.store(row + (h - HQ - HKV) * s_ch + D + d, y.to(kv_ptr.dtype.element_ty), mask=is_v & in_head)


def qkv_rope(qkv, positions, cos_sin_cache, num_heads, num_kv_heads, head_size, q_norm_weight=None,
             k_norm_weight=None, eps=1e-6, kv_cache=None, slot_mapping=None, *, table: LaunchTable):
    t = qkv.shape[0]
    q = torch.empty(t, num_heads, head_size, dtype=qkv.dtype, device=qkv.device)
    k = torch.empty(t, num_kv_heads, head_size, dtype=qkv.dtype, device=qkv.device)
    v = torch.empty(t, num_kv_heads, head_size, dtype=qkv.dtype, device=qkv.device)
    write = kv_cache is not None
    cache_strides = kv_cache.stride()[:3] if write else (0, 0, 0)
    heads = num_heads + 2 * num_kv_heads
    head_block = min(8, triton.next_power_of_2(heads))
    _qkv_rope_kernel[table.grid(t * triton.cdiv(heads, head_block), uses_dot=False)](
        qkv, positions, cos_sin_cache,
        q_norm_weight if q_norm_weight is not None else qkv, k_norm_weight if k_norm_weight is not None else qkv,
        q, k, v, kv_cache if write else qkv, slot_mapping if write else positions,
        t, slot_mapping.shape[0] if write else 0,
        qkv.stride(0), cos_sin_cache.stride(0), q.stride(0), k.stride(0), v.stride(0), *cache_strides, eps,
        HQ=num_heads, HKV=num_kv_heads, D=head_size, D_PAD=triton.next_power_of_2(head_size), HB=head_block,
        ROT=cos_sin_cache.shape[-1], HAS_Q_NORM=q_norm_weight is not None, HAS_K_NORM=k_norm_weight is not None,
        WRITE_KV=write, BLOCK=kv_cache.shape[2] if write else 1,
    )
    return q, k, v
