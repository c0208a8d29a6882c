"""Torch references of the fused decoder ops our fusion passes emit.

Conventions follow vLLM's layers: RMSNorm computes in fp32 and casts back; SwiGLU takes
[gate | up] concatenated on the last dim; RoPE uses a cos/sin cache
[max_position, rotary_dim] holding cos in the first half and sin in the second, in
NeoX (rotate-half) style.
"""

import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (y * weight.float()).to(x.dtype)


def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float):
    """(rms_norm(x + residual), x + residual): the residual stream and the normed input."""
    summed = (x.float() + residual.float()).to(x.dtype)
    return rms_norm(summed, weight, eps), summed


def swiglu(x: torch.Tensor) -> torch.Tensor:
    gate, up = x.chunk(2, dim=-1)
    return (torch.nn.functional.silu(gate.float()) * up.float()).to(x.dtype)


def rope_neox(x: torch.Tensor, positions: torch.Tensor, cos_sin_cache: torch.Tensor) -> torch.Tensor:
    """x [T, H, D]; rotates the first rotary_dim features of every head."""
    rot = cos_sin_cache.shape[-1]
    cos, sin = cos_sin_cache[positions.long()].float().chunk(2, dim=-1)  # [T, rot/2]
    cos, sin = cos[:, None, :], sin[:, None, :]
    xf = x.float()
    x1, x2 = xf[..., : rot // 2], xf[..., rot // 2 : rot]
    rotated = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, xf[..., rot:]], dim=-1)
    return rotated.to(x.dtype)


def qkv_rope(
    qkv: torch.Tensor,
    positions: torch.Tensor,
    cos_sin_cache: torch.Tensor,
    num_heads: int,
    num_kv_heads: int,
    head_size: int,
    q_norm_weight: torch.Tensor | None = None,
    k_norm_weight: torch.Tensor | None = None,
    eps: float = 1e-6,
    kv_cache: torch.Tensor | None = None,
    slot_mapping: torch.Tensor | None = None,
):
    """Split a fused QKV projection [T, (Hq + 2 Hkv) * D] into q, k, v ([T, H, D]),
    apply per-head RMSNorm to q and k when weights are given (Qwen3), then RoPE; with a
    KV cache, also store the rotated keys and the values at their slots."""
    t = qkv.shape[0]
    q, k, v = qkv.split([num_heads * head_size, num_kv_heads * head_size, num_kv_heads * head_size], dim=-1)
    q = q.reshape(t, num_heads, head_size)
    k = k.reshape(t, num_kv_heads, head_size)
    if q_norm_weight is not None:
        q = rms_norm(q, q_norm_weight, eps)
    if k_norm_weight is not None:
        k = rms_norm(k, k_norm_weight, eps)
    v = v.reshape(t, num_kv_heads, head_size).clone()  # an op output must not alias its input
    q, k = rope_neox(q, positions, cos_sin_cache), rope_neox(k, positions, cos_sin_cache)
    if kv_cache is not None:
        from vllm_npu_graph.kernels.attention_reference import write_kv_cache

        write_kv_cache(k, v, kv_cache, slot_mapping)
    return q, k, v
