"""Portable Triton kernels of the routed experts (same signature as
`moe_reference.experts`, plus a launch table): dropless, sync-free, cube matmuls.

One program per (token block, column tile) owns its output tile: it loops over the
experts and computes only those some token of its block chose (a branch on a count
inside the kernel), so decode reads the chosen experts' weights, not all E, and no
other program ever writes its rows (routing-masked stores from several programs
would race on Ascend, where a masked store becomes a full-tile select). Routing never
leaves the device: no sort, no host read. Gate/up GEMMs + SwiGLU give each (token,
choice) slot the activation of the expert it chose; the down GEMM sums the k slots
scaled by their routing weights. Loads and stores are plain tiles. Prefill runs each
chosen expert per token block (no sort by expert yet): correct, but more weight reads
than a grouping by expert would make.
"""

import torch
import triton
import triton.language as tl

from vllm_npu_graph.kernels.launch import LaunchTable
from vllm_npu_graph.kernels.moe_reference import local_routing

BLOCK_M, BLOCK_N, BLOCK_K = 16, 64, 64  # tiles: 44 KB live at fp32, inside Ascend's UB


@triton.jit
def _gate_up_kernel(
    x_ptr, ids_ptr, w_ptr, act_ptr, tokens, hidden, inter, s_x, s_we, s_wn, s_a,
    TOPK: tl.constexpr, NUM_EXPERTS: tl.constexpr, UPCAST: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip
    n_tiles = tl.cdiv(inter, BN)
    for task in range(tl.program_id(0), tl.cdiv(tokens, BM) * n_tiles, tl.num_programs(0)):
        t = (task // n_tiles) * BM + tl.arange(0, BM)
        cols = (task % n_tiles) * BN + tl.arange(0, BN)
        for k in tl.static_range(TOPK):
            ids = tl.load(ids_ptr + t * TOPK + k, mask=t < tokens, other=-1)
            act = tl.zeros((BM, BN), dtype=tl.float32)
            for e in range(NUM_EXPERTS):
                hit = ids == e
                if tl.sum(hit.to(tl.int32), 0) > 0:
                    acc_g = tl.zeros((BM, BN), dtype=tl.float32)
                    acc_u = tl.zeros((BM, BN), dtype=tl.float32)
                    for k0 in range(0, hidden, BK):
                        kk = k0 + tl.arange(0, BK)
                        x = tl.load(
                            x_ptr + t[:, None] * s_x + kk[None, :],
                            mask=(t < tokens)[:, None] & (kk < hidden)[None, :],
                            other=0.0,
                        )
                        w_mask = (kk < hidden)[:, None] & (cols < inter)[None, :]
                        w_at = w_ptr + e * s_we + kk[:, None]
                        wg = tl.load(w_at + cols[None, :] * s_wn, mask=w_mask, other=0.0)
                        wu = tl.load(w_at + (inter + cols)[None, :] * s_wn, mask=w_mask, other=0.0)
                        if UPCAST:
                            x, wg, wu = x.to(tl.float32), wg.to(tl.float32), wu.to(tl.float32)
                        acc_g += tl.dot(x, wg)
                        acc_u += tl.dot(x, wu)
                    act = tl.where(hit[:, None], acc_g * tl.sigmoid(acc_g) * acc_u, act)
            tl.store(
                act_ptr + (t * TOPK + k)[:, None] * s_a + cols[None, :],
                act.to(act_ptr.dtype.element_ty),
                mask=(t < tokens)[:, None] & (cols < inter)[None, :],
            )


@triton.jit
def _down_kernel(
    act_ptr, ids_ptr, wt_ptr, w_ptr, out_ptr, tokens, hidden, inter, s_a, s_we, s_wn, s_o,
    TOPK: tl.constexpr, NUM_EXPERTS: tl.constexpr, UPCAST: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip
    n_tiles = tl.cdiv(hidden, BN)
    for task in range(tl.program_id(0), tl.cdiv(tokens, BM) * n_tiles, tl.num_programs(0)):
        t = (task // n_tiles) * BM + tl.arange(0, BM)
        cols = (task % n_tiles) * BN + tl.arange(0, BN)
        out = tl.zeros((BM, BN), dtype=tl.float32)
        for k in tl.static_range(TOPK):
            slot = t * TOPK + k
            ids = tl.load(ids_ptr + slot, mask=t < tokens, other=-1)
            weight = tl.load(wt_ptr + slot, mask=t < tokens, other=0.0).to(tl.float32)
            for e in range(NUM_EXPERTS):
                hit = ids == e
                if tl.sum(hit.to(tl.int32), 0) > 0:
                    acc = tl.zeros((BM, BN), dtype=tl.float32)
                    for k0 in range(0, inter, BK):
                        kk = k0 + tl.arange(0, BK)
                        a = tl.load(
                            act_ptr + slot[:, None] * s_a + kk[None, :],
                            mask=(t < tokens)[:, None] & (kk < inter)[None, :],
                            other=0.0,
                        )
                        w = tl.load(
                            w_ptr + e * s_we + cols[None, :] * s_wn + kk[:, None],
                            mask=(kk < inter)[:, None] & (cols < hidden)[None, :],
                            other=0.0,
                        )
                        if UPCAST:
                            a, w = a.to(tl.float32), w.to(tl.float32)
                        acc += tl.dot(a, w)
                    out += tl.where(hit[:, None], acc * weight[:, None], 0.0)
        tl.store(
            out_ptr + t[:, None] * s_o + cols[None, :],
            out.to(out_ptr.dtype.element_ty),
            mask=(t < tokens)[:, None] & (cols < hidden)[None, :],
        )


def experts(x, topk_weights, topk_ids, w13, w2, expert_map, *, table: LaunchTable):
    weights, ids = local_routing(topk_weights, topk_ids, expert_map)
    tokens, top_k = ids.shape
    num_experts, two_i, hidden = w13.shape
    inter = two_i // 2
    x, w13, w2 = x.contiguous(), w13.contiguous(), w2.contiguous()
    ids, weights = ids.contiguous(), weights.float().contiguous()
    act = torch.empty(tokens * top_k, inter, dtype=x.dtype, device=x.device)
    out = torch.empty_like(x)
    blocks = dict(TOPK=top_k, NUM_EXPERTS=num_experts, UPCAST=table.upcast_dot, BM=BLOCK_M, BN=BLOCK_N, BK=BLOCK_K)
    token_blocks = triton.cdiv(tokens, BLOCK_M)
    _gate_up_kernel[table.grid(token_blocks * triton.cdiv(inter, BLOCK_N), uses_dot=True)](
        x, ids, w13, act, tokens, hidden, inter, x.stride(0), w13.stride(0), w13.stride(1), act.stride(0),
        **blocks, **table.dot_options(),
    )  # fmt: skip
    _down_kernel[table.grid(token_blocks * triton.cdiv(hidden, BLOCK_N), uses_dot=True)](
        act, ids, weights, w2, out, tokens, hidden, inter, act.stride(0), w2.stride(0), w2.stride(1), out.stride(0),
        **blocks, **table.dot_options(),
    )  # fmt: skip
    return out
