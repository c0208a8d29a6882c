"""The fused decoder ops our passes emit (npu_graph:: ops, see ops/library.py).

Each has a schema, a fake impl, the torch reference, the portable Triton kernel and,
where the device library has one, a native impl (NPU: torch_npu.npu_rms_norm,
npu_add_rms_norm, npu_swiglu; QKV split + QK-norm + RoPE has no single torch_npu op, so
it runs our Triton kernel there), chosen per process in `kernel_choice`.
"""

from vllm_npu_graph.ops import kernel_choice
from vllm_npu_graph.ops.library import op


@op(
    "linear(Tensor x, Tensor weight, Tensor? bias) -> Tensor",
    fake=lambda x, weight, bias: x.new_empty(*x.shape[:-1], weight.shape[0]),
)
def linear(x, weight, bias):
    """x @ weight.T (+ bias) for a model weight: the host's native impl packs the weight
    once for oneDNN; elsewhere it is F.linear (the device's own GEMM)."""
    return kernel_choice.impls["linear"](x, weight, bias)


@op("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor", fake=lambda x, weight, eps: x.new_empty(x.shape))
def rms_norm(x, weight, eps):
    return kernel_choice.impls["rms_norm"](x, weight, eps)


@op(
    "add_rms_norm(Tensor x, Tensor residual, Tensor weight, float eps) -> (Tensor, Tensor)",
    fake=lambda x, residual, weight, eps: (x.new_empty(x.shape), x.new_empty(x.shape)),
)
def add_rms_norm(x, residual, weight, eps):
    return kernel_choice.impls["add_rms_norm"](x, residual, weight, eps)


@op("swiglu(Tensor x) -> Tensor", fake=lambda x: x.new_empty(*x.shape[:-1], x.shape[-1] // 2))
def swiglu(x):
    return kernel_choice.impls["swiglu"](x)


def _qkv_rope_fake(
    qkv, positions, cos_sin_cache, num_heads, num_kv_heads, head_size, q_norm_weight, k_norm_weight, eps
):
    t = qkv.shape[0]
    return (
        qkv.new_empty(t, num_heads, head_size),
        qkv.new_empty(t, num_kv_heads, head_size),
        qkv.new_empty(t, num_kv_heads, head_size),
    )


@op(
    "qkv_rope(Tensor qkv, Tensor positions, Tensor cos_sin_cache, SymInt num_heads, SymInt num_kv_heads, "
    "SymInt head_size, Tensor? q_norm_weight, Tensor? k_norm_weight, float eps) -> (Tensor, Tensor, Tensor)",
    fake=_qkv_rope_fake,
)
def qkv_rope(qkv, positions, cos_sin_cache, num_heads, num_kv_heads, head_size, q_norm_weight, k_norm_weight, eps):
    return kernel_choice.impls["qkv_rope"](
        qkv, positions, cos_sin_cache, num_heads, num_kv_heads, head_size, q_norm_weight, k_norm_weight, eps
    )
