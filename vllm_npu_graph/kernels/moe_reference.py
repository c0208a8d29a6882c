"""Mixture-of-experts in plain torch: the reference every target's MoE kernels are
checked against, and what runs where no native kernel fits.

Free of host syncs and data-dependent shapes (no `nonzero`, `.item()` or boolean
indexing): every expert sees every row with that row's weight for it, zero where the
router did not pick it. That costs E dense GEMMs instead of top-k, fine for a
reference and for tiny models; the targets' kernels route for real.
"""

import torch
import torch.nn.functional as F


def topk_softmax(router_logits: torch.Tensor, top_k: int, renormalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over the experts (fp32), the top-k of it, renormalised to sum 1 if asked.
    Returns (weights fp32 [M, k], expert ids int32 [M, k])."""
    probs = torch.softmax(router_logits.float(), dim=-1)
    weights, ids = torch.topk(probs, top_k, dim=-1)
    if renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, ids.to(torch.int32)


def local_routing(
    topk_weights: torch.Tensor, topk_ids: torch.Tensor, expert_map: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global expert ids to this rank's (expert parallel): an expert held elsewhere gets
    weight 0 and id 0, so every kernel can run the same fixed shapes."""
    if expert_map is None:
        return topk_weights, topk_ids
    local = expert_map[topk_ids.long()]
    held = local >= 0
    return topk_weights * held, torch.where(held, local, 0).to(torch.int32)


def experts(
    x: torch.Tensor,
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    w13: torch.Tensor,
    w2: torch.Tensor,
    expert_map: torch.Tensor | None,
) -> torch.Tensor:
    """sum_k weight_k * W2_e (silu(W1_e x) * W3_e x), e = id_k. w13 [E, 2I, H] holds
    each expert's gate rows then its up rows; w2 [E, H, I]."""
    topk_weights, topk_ids = local_routing(topk_weights, topk_ids, expert_map)
    num_experts, two_i, _ = w13.shape
    # [M, E]: each row's weight for each expert (summed if an id repeats)
    gates = torch.zeros(x.shape[0], num_experts, dtype=torch.float32, device=x.device)
    gates.scatter_add_(1, topk_ids.long(), topk_weights.float())
    out = torch.zeros(x.shape[0], w2.shape[1], dtype=torch.float32, device=x.device)
    for e in range(num_experts):
        gate_up = F.linear(x, w13[e])
        act = F.silu(gate_up[:, : two_i // 2]) * gate_up[:, two_i // 2 :]
        out += gates[:, e : e + 1] * F.linear(act, w2[e]).float()
    return out.to(x.dtype)
