"""Our W8A8 ops (npu_graph:: ops, see ops/library.py): dynamic per-token int8
quantization and the int8 GEMM with per-token x per-channel scales.

Two ops, not one: the quantization is a small elementwise step after each norm or
activation, which fusion passes can fold into the op before it. Each has a schema, a
fake, the torch reference (kernels/quant_reference.py) and per-target kernels chosen in
`kernel_choice` (host: vLLM CPU's int8 quantization and oneDNN int8 GEMM on weights
packed at load; NPU: npu_dynamic_quant and npu_quant_matmul).
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
