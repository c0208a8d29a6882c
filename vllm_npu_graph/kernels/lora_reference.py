"""Torch reference of the LoRA op (ops/lora.py). Each token picks its adapter slot by
index (-1: the base model, no delta). Instead of gathering one weight matrix per
token, every slot's product is computed as one dense GEMM over all slots and the
token's slot is kept by a one-hot mask: no data-dependent shape, no host sync, an
index of -1 gives exactly zero (never a wrapped-around slot), and with a handful of
slots of rank <= 64 the extra work is small next to the base linear."""

import torch


def _slot_mask(indices: torch.Tensor, slots: int, dtype: torch.dtype) -> torch.Tensor:
    """[T] slot indices (-1: none) -> [T, slots, 1] one-hot in dtype."""
    hits = indices.unsqueeze(1) == torch.arange(slots, device=indices.device).unsqueeze(0)
    return hits.to(dtype).unsqueeze(-1)


def shrink(x: torch.Tensor, mask: torch.Tensor, a_stacked: torch.Tensor, scale: float) -> torch.Tensor:
    """x [T, in], a_stacked [slots, 1, rank, in] -> [T, rank]: x @ A[slot].T * scale."""
    slots, _, rank, width = a_stacked.shape
    every = (x @ a_stacked.reshape(slots * rank, width).t()).view(-1, slots, rank)
    return (every * mask).sum(dim=1) * scale


def expand(h: torch.Tensor, mask: torch.Tensor, b_stacked: torch.Tensor) -> torch.Tensor:
    """h [T, rank], b_stacked [slots, 1, out, rank] -> [T, out]: h @ B[slot].T."""
    slots, _, out, rank = b_stacked.shape
    masked = (h[:, :rank].unsqueeze(1) * mask).reshape(-1, slots * rank)
    return masked @ b_stacked.reshape(slots, out, rank).permute(0, 2, 1).reshape(slots * rank, out)


def lora_linear(x, indices, a_stacked, b_stacked, scale: float) -> torch.Tensor:
    """x [T, in] -> [T, sum of outs]: per output slice i, x @ A_i[slot].T @ B_i[slot].T * scale."""
    mask = _slot_mask(indices, b_stacked[0].shape[0], x.dtype)
    parts = [expand(shrink(x, mask, a, scale), mask, b) for a, b in zip(a_stacked, b_stacked)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def lora_expand(h, indices, b_stacked) -> torch.Tensor:
    """h [T, rank] (already shrunk, as embeddings are) -> [T, out]: h @ B[slot].T."""
    return expand(h, _slot_mask(indices, b_stacked.shape[0], h.dtype), b_stacked)
