"""Our LoRA ops against a per-token loop: each token's own slot, -1 adds nothing (a
gather would wrap it to the last slot), slices concatenated, ranks below the slot
width zero-padded as vLLM stores them; and the ops trace into a graph whole."""

import torch

from vllm_npu_graph.ops import lora as lora_ops

SLOTS, RANK, IN = 3, 8, 40


def stacked(out: int, rank_used: int, gen):
    a = torch.zeros(SLOTS, 1, RANK, IN)
    b = torch.zeros(SLOTS, 1, out, RANK)
    a[:, :, :rank_used] = torch.randn(SLOTS, 1, rank_used, IN, generator=gen)
    b[:, :, :, :rank_used] = torch.randn(SLOTS, 1, out, rank_used, generator=gen)
    return a, b


def per_token(x, indices, pairs, scale):
    rows = []
    for t, slot in enumerate(indices.tolist()):
        parts = [
            torch.zeros(b.shape[2]) if slot < 0 else (x[t] @ a[slot, 0].T @ b[slot, 0].T) * scale for a, b in pairs
        ]
        rows.append(torch.cat(parts))
    return torch.stack(rows)


def test_lora_linear_equals_a_per_token_loop():
    gen = torch.Generator().manual_seed(0)
    pairs = [stacked(24, 8, gen), stacked(16, 5, gen), stacked(16, 5, gen)]
    x = torch.randn(7, IN, generator=gen)
    indices = torch.tensor([0, -1, 2, 1, -1, 2, 0])
    got = lora_ops.lora_linear(x, indices, [a for a, _ in pairs], [b for _, b in pairs], 2.0)
    torch.testing.assert_close(got, per_token(x, indices, pairs, 2.0), rtol=1e-5, atol=1e-5)
    assert torch.all(got[indices < 0] == 0)


def test_lora_expand_of_shrunk_rows_equals_a_per_token_loop():
    gen = torch.Generator().manual_seed(1)
    _, b = stacked(12, RANK, gen)
    h = torch.randn(5, RANK, generator=gen)
    indices = torch.tensor([2, -1, 0, 1, 2])
    want = torch.stack([torch.zeros(12) if s < 0 else h[t] @ b[s, 0].T for t, s in enumerate(indices.tolist())])
    torch.testing.assert_close(lora_ops.lora_expand(h, indices, b), want, rtol=1e-5, atol=1e-5)


def test_lora_linear_compiles_as_one_graph_with_a_dynamic_token_count():
    gen = torch.Generator().manual_seed(2)
    a, b = stacked(16, RANK, gen)
    indices = torch.tensor([1, -1, 0, 2, 1, 0])

    def delta(x):
        return lora_ops.lora_linear(x, indices[: x.shape[0]], [a], [b], 1.0)

    compiled = torch.compile(delta, fullgraph=True, dynamic=True, backend="eager")  # traced whole, or an error
    for n in (3, 6):
        x = torch.randn(n, IN, generator=gen)
        want = per_token(x, indices[:n], [(a, b)], 1.0)
        torch.testing.assert_close(compiled(x), want, rtol=1e-5, atol=1e-5)
