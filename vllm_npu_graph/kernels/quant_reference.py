"""Torch references of the W8A8 ops (ops/quant.py): symmetric int8 with a float32
scale per token (activations) and per output channel (weights). Integer products are
summed exactly (float64 holds any int8 dot product of K < 2**37 terms), then scaled in
float32 as the device kernels do."""

import torch

from vllm_npu_graph.kernels import fused_reference

INT8_MAX = 127.0


def quant_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [M, K] -> (int8 [M, K], float32 scale [M, 1]) with x ~= q * scale; a zero row
    gets scale 1 (all zeros exactly)."""
    xf = x.float()
    amax = xf.abs().amax(dim=-1, keepdim=True)
    scale = torch.where(amax > 0, amax / INT8_MAX, torch.ones_like(amax))
    q = torch.round(xf / scale).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def rms_norm_quant(x, weight, eps):
    """The fused ops quantize exactly what the unfused graph would: the norm's or the
    activation's output in the model's dtype (so their int8 equals the unfused one's)."""
    return quant_per_token(fused_reference.rms_norm(x, weight, eps))


def add_rms_norm_quant(x, residual, weight, eps):
    normed, summed = fused_reference.add_rms_norm(x, residual, weight, eps)
    return (*quant_per_token(normed), summed)


def swiglu_quant(x):
    return quant_per_token(fused_reference.swiglu(x))


def int8_linear(x_q, x_scale, w, w_scale, bias, out_dtype) -> torch.Tensor:
    """(x_q [M, K] @ w [K, N]) * x_scale [M, 1] * w_scale [N] (+ bias), in out_dtype."""
    acc = (x_q.double() @ w.double()).float()
    out = acc * x_scale * w_scale
    if bias is not None:
        out = out + bias.float()
    return out.to(out_dtype)


def quantize_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A float weight [N, K] -> (int8 [N, K], float32 scale [N, 1]) per output channel:
    what an offline W8A8 checkpoint stores (quantize.py)."""
    return quant_per_token(w)
