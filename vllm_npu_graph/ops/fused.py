"""The fused decoder ops our passes emit (torch.library custom ops).

Each has a schema, a fake impl, the torch reference, the portable Triton kernel and,
where the device library has one, a native impl (NPU: torch_npu.npu_rms_norm,
npu_add_rms_norm, npu_swiglu), chosen per process in `kernel_choice`.
"""

import torch

from vllm_npu_graph.kernels import fused_reference as reference
from vllm_npu_graph.ops import kernel_choice


def _run(name: str, *args):
    native = kernel_choice.native_ops.get(name)
    if native is not None:
        return native(*args)
    if kernel_choice.triton_table is not None:
        from vllm_npu_graph.kernels import fused_triton

        return getattr(fused_triton, name)(*args, table=kernel_choice.triton_table)
    return getattr(reference, name)(*args)


@torch.library.custom_op("npu_graph::rms_norm", mutates_args=())
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return _run("rms_norm", x, weight, eps)


@rms_norm.register_fake
def _(x, weight, eps):
    return torch.empty_like(x)


@torch.library.custom_op("npu_graph::add_rms_norm", mutates_args=())
def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    return _run("add_rms_norm", x, residual, weight, eps)


@add_rms_norm.register_fake
def _(x, residual, weight, eps):
    return torch.empty_like(x), torch.empty_like(x)


@torch.library.custom_op("npu_graph::swiglu", mutates_args=())
def swiglu(x: torch.Tensor) -> torch.Tensor:
    return _run("swiglu", x)


@swiglu.register_fake
def _(x):
    return x.new_empty(*x.shape[:-1], x.shape[-1] // 2)
