"""Our W8A8 ops (npu_graph:: ops, see ops/library.py): dynamic per-token int8
quantization, the int8 GEMM with per-token x per-channel scales, and the quantization
fused into the op before it (RMSNorm, residual add + RMSNorm, SwiGLU).

The quantization is its own op because it is a small elementwise step after each norm
or activation: the quant fusion passes (passes/*_quant.py) fold it into the op before
it, which then writes int8 rows and their scales instead of the model's dtype. Each op
has a schema, a fake, the torch reference (kernels/quant_reference.py) and per-target
kernels chosen in `kernel_choice` (host: our C++ ops and vLLM CPU's int8 kernels; NPU:
npu_dynamic_quant, npu_quant_matmul, npu_add_rms_norm_dynamic_quant, npu_swiglu_quant,
and our Triton kernel for RMSNorm + quant, which torch_npu has only with static scales).
"""

import torch

from vllm_npu_graph.ops import kernel_choice
from vllm_npu_graph.ops.library import op


def _quant_fake(x):
    return x.new_empty(x.shape, dtype=torch.int8), x.new_empty(x.shape[0], 1, dtype=torch.float32)


@op("quant_per_token(Tensor x) -> (Tensor, Tensor)", fake=_quant_fake)
def quant_per_token(x):
    """x [M, K] -> (int8 [M, K], float32 scale [M, 1])."""
    return kernel_choice.impls["quant_per_token"](x)


# The fused ops' fakes, shared with the host target's C++ ops of the same schemas.
FUSED_FAKES = {
    "rms_norm_quant": lambda x, weight, eps: _quant_fake(x),
    "add_rms_norm_quant": lambda x, residual, weight, eps: (*_quant_fake(x), x.new_empty(x.shape)),
    "swiglu_quant": lambda x: _quant_fake(x.new_empty(x.shape[0], x.shape[-1] // 2)),
}


@op("rms_norm_quant(Tensor x, Tensor weight, float eps) -> (Tensor, Tensor)", fake=FUSED_FAKES["rms_norm_quant"])
def rms_norm_quant(x, weight, eps):
    """quant_per_token(rms_norm(x, weight, eps)) for x [M, K]."""
    return kernel_choice.impls["rms_norm_quant"](x, weight, eps)


@op(
    "add_rms_norm_quant(Tensor x, Tensor residual, Tensor weight, float eps) -> (Tensor, Tensor, Tensor)",
    fake=FUSED_FAKES["add_rms_norm_quant"],
)
def add_rms_norm_quant(x, residual, weight, eps):
    """(int8, scale) of rms_norm(x + residual) and the new residual x + residual."""
    return kernel_choice.impls["add_rms_norm_quant"](x, residual, weight, eps)


@op("swiglu_quant(Tensor x) -> (Tensor, Tensor)", fake=FUSED_FAKES["swiglu_quant"])
def swiglu_quant(x):
    """quant_per_token(silu(gate) * up) for x [M, 2I] = [gate | up]."""
    return kernel_choice.impls["swiglu_quant"](x)


def _linear_fake(x_q, x_scale, w, w_scale, bias, out_dtype):
    return x_q.new_empty(x_q.shape[0], w_scale.shape[0], dtype=out_dtype)


@op(
    "int8_linear(Tensor x_q, Tensor x_scale, Tensor w, Tensor w_scale, Tensor? bias, ScalarType out_dtype) -> Tensor",
    fake=_linear_fake,
)
def int8_linear(x_q, x_scale, w, w_scale, bias, out_dtype):
    """x_q [M, K] int8 times the packed weight, scaled by x_scale [M, 1] and w_scale [N]."""
    return kernel_choice.impls["int8_linear"](x_q, x_scale, w, w_scale, bias, out_dtype)


def pack_int8_weight(w: torch.Tensor, w_scale: torch.Tensor, out_dtype: torch.dtype):
    """A loaded int8 weight [N, K] and its float32 scales [N] -> (the weight in the layout
    this process's `int8_linear` reads, an object to keep alive beside it or None).
    Called once at load."""
    return kernel_choice.impls["pack_int8_weight"](w, w_scale, out_dtype)
