"""Portable Triton kernels of the fused quantize ops (same signatures as
`quant_reference`, plus a launch table): the norm or activation is computed, cast to
the model's dtype as the unfused graph would store it, and written as int8 rows with a
float32 scale per row (amax / 127, round half to even). Vector-only: rows loop inside
each program."""

import torch
import triton
import triton.language as tl

from vllm_npu_graph.kernels.fused_triton import _norm_row
from vllm_npu_graph.kernels.launch import LaunchTable


@triton.jit
def _round_half_even(v):
    """torch.round's rounding, from floor alone (v - floor(v) is exact for |v| < 2**23)."""
    f = tl.floor(v)
    d = v - f
    odd = (f - 2.0 * tl.floor(f * 0.5)) == 1.0
    return tl.where((d > 0.5) | ((d == 0.5) & odd), f + 1.0, f)


@triton.jit
def _quantize(y, scale):
    return tl.minimum(tl.maximum(_round_half_even(y / scale), -127.0), 127.0).to(tl.int8)


@triton.jit
def _scale_of(amax):
    return tl.where(amax > 0, amax / 127.0, 1.0)


@triton.jit
def _rms_norm_quant_kernel(
    x_ptr,
    r_ptr,
    w_ptr,
    q_ptr,
    scale_ptr,
    sum_ptr,
    rows,
    n,
    s_x,
    s_r,
    s_q,
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
        y = y.to(x_ptr.dtype.element_ty).to(tl.float32)
        scale = _scale_of(tl.max(tl.abs(y), 0))
        tl.store(q_ptr + row * s_q + c, _quantize(y, scale), mask=mask)
        tl.store(scale_ptr + row, scale)


def _norm_quant(x, residual, weight, eps, table: LaunchTable):
    x, residual = x.contiguous(), None if residual is None else residual.contiguous()
    q = torch.empty(x.shape, dtype=torch.int8, device=x.device)
    scale = torch.empty(x.shape[0], 1, dtype=torch.float32, device=x.device)
    summed = torch.empty_like(x) if residual is not None else q
    _rms_norm_quant_kernel[table.grid(x.shape[0], uses_dot=False)](
        x,
        x if residual is None else residual,
        weight,
        q,
        scale,
        summed,
        x.shape[0],
        x.shape[1],
        x.stride(0),
        0 if residual is None else residual.stride(0),
        q.stride(0),
        0 if residual is None else summed.stride(0),
        eps,
        HAS_RESIDUAL=residual is not None,
        N_PAD=triton.next_power_of_2(x.shape[1]),
    )
    return q, scale, summed


def rms_norm_quant(x, weight, eps, *, table: LaunchTable):
    q, scale, _ = _norm_quant(x, None, weight, eps, table)
    return q, scale


def add_rms_norm_quant(x, residual, weight, eps, *, table: LaunchTable):
    return _norm_quant(x, residual, weight, eps, table)


@triton.jit
def _swiglu_row(x_ptr, row, s_x, n, c, mask, out_dtype: tl.constexpr):
    gate = tl.load(x_ptr + row * s_x + c, mask=mask, other=0.0).to(tl.float32)
    up = tl.load(x_ptr + row * s_x + n + c, mask=mask, other=0.0).to(tl.float32)
    return (gate / (1.0 + tl.exp(-gate)) * up).to(out_dtype).to(tl.float32)


@triton.jit
def _swiglu_quant_kernel(x_ptr, q_ptr, scale_ptr, rows, n, s_x, s_q, BLOCK: tl.constexpr):
    """Two sweeps over the row's blocks (a Qwen3-32B row does not fit one program's
    memory): the amax, then the quantized values, recomputing SwiGLU."""
    out_dtype = x_ptr.dtype.element_ty
    for row in range(tl.program_id(0), rows, tl.num_programs(0)):
        amax = tl.zeros([BLOCK], tl.float32)
        for start in range(0, n, BLOCK):
            c = start + tl.arange(0, BLOCK)
            mask = c < n
            amax = tl.maximum(amax, tl.abs(_swiglu_row(x_ptr, row, s_x, n, c, mask, out_dtype)))
        scale = _scale_of(tl.max(amax, 0))
        for start in range(0, n, BLOCK):
            c = start + tl.arange(0, BLOCK)
            mask = c < n
            y = _swiglu_row(x_ptr, row, s_x, n, c, mask, out_dtype)
            tl.store(q_ptr + row * s_q + c, _quantize(y, scale), mask=mask)
        tl.store(scale_ptr + row, scale)


def swiglu_quant(x, *, table: LaunchTable):
    x = x.contiguous()
    n = x.shape[1] // 2
    q = torch.empty(x.shape[0], n, dtype=torch.int8, device=x.device)
    scale = torch.empty(x.shape[0], 1, dtype=torch.float32, device=x.device)
    _swiglu_quant_kernel[table.grid(x.shape[0], uses_dot=False)](
        x, q, scale, x.shape[0], n, x.stride(0), q.stride(0), BLOCK=min(1024, triton.next_power_of_2(n))
    )
    return q, scale
