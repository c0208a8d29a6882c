"""The fused decoder ops our passes emit (torch.library custom ops).

Each has a schema, a fake impl, the torch reference, the portable Triton kernel and,
where the device library has one, a native impl (NPU: torch_npu.npu_rms_norm,
npu_add_rms_norm, npu_swiglu; QKV split + QK-norm + RoPE has no single torch_npu op, so
it runs our Triton kernel there), chosen per process in `kernel_choice`.
"""

import torch

from vllm_npu_graph.ops import kernel_choice


@torch.library.custom_op("npu_graph::linear", mutates_args=())
def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ weight.T (+ bias) for a model weight: the host's native impl packs the weight
    once for oneDNN; elsewhere it is F.linear (the device's own GEMM)."""
    return kernel_choice.impls["linear"](x, weight, bias)


@linear.register_fake
def _(x, weight, bias):
    return x.new_empty(*x.shape[:-1], weight.shape[0])


@torch.library.custom_op("npu_graph::rms_norm", mutates_args=())
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return kernel_choice.impls["rms_norm"](x, weight, eps)


@rms_norm.register_fake
def _(x, weight, eps):
    return torch.empty_like(x)


@torch.library.custom_op("npu_graph::add_rms_norm", mutates_args=())
def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    return kernel_choice.impls["add_rms_norm"](x, residual, weight, eps)


@add_rms_norm.register_fake
def _(x, residual, weight, eps):
    return torch.empty_like(x), torch.empty_like(x)


@torch.library.custom_op("npu_graph::swiglu", mutates_args=())
def swiglu(x: torch.Tensor) -> torch.Tensor:
    return kernel_choice.impls["swiglu"](x)


@swiglu.register_fake
def _(x):
    return x.new_empty(*x.shape[:-1], x.shape[-1] // 2)


@torch.library.custom_op("npu_graph::qkv_rope", mutates_args=())
def qkv_rope(
    qkv: torch.Tensor, positions: torch.Tensor, cos_sin_cache: torch.Tensor, num_heads: int, num_kv_heads: int,
    head_size: int, q_norm_weight: torch.Tensor | None, k_norm_weight: torch.Tensor | None, eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return kernel_choice.impls["qkv_rope"](qkv, positions, cos_sin_cache, num_heads, num_kv_heads, head_size,
                                           q_norm_weight, k_norm_weight, eps)


@qkv_rope.register_fake
def _(qkv, positions, cos_sin_cache, num_heads, num_kv_heads, head_size, q_norm_weight, k_norm_weight, eps):
    t = qkv.shape[0]
    return (qkv.new_empty(t, num_heads, head_size), qkv.new_empty(t, num_kv_heads, head_size),
            qkv.new_empty(t, num_kv_heads, head_size))
