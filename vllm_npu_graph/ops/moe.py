"""Our mixture-of-experts ops (npu_graph:: ops, see ops/library.py): top-k gating and
the routed experts (grouped GEMM + SwiGLU + grouped GEMM + weighted sum).

Each has a schema, a fake impl, the torch reference (kernels/moe_reference.py) and
per-target native impls chosen in `kernel_choice` (host: vLLM CPU's fused MoE kernel
on prepacked weights; NPU: torch_npu's gating, routing and grouped-matmul ops). Routing
stays on the device: nothing here reads a value back to the host.
"""

import torch

from vllm_npu_graph.ops import kernel_choice
from vllm_npu_graph.ops.library import op


def _topk_fake(router_logits, top_k, renormalize):
    rows = router_logits.shape[0]
    weights = router_logits.new_empty(rows, top_k, dtype=torch.float32)
    return weights, router_logits.new_empty(rows, top_k, dtype=torch.int32)


@op("moe_topk_softmax(Tensor router_logits, SymInt top_k, bool renormalize) -> (Tensor, Tensor)", fake=_topk_fake)
def topk_softmax(router_logits, top_k, renormalize):
    """(weights fp32 [M, k], expert ids int32 [M, k]) of softmax(router_logits)."""
    return kernel_choice.impls["moe_topk_softmax"](router_logits, top_k, renormalize)


@op(
    "moe_experts(Tensor x, Tensor topk_weights, Tensor topk_ids, Tensor w13, Tensor w2, Tensor? expert_map) -> Tensor",
    fake=lambda x, topk_weights, topk_ids, w13, w2, expert_map: x.new_empty(x.shape),
)
def experts(x, topk_weights, topk_ids, w13, w2, expert_map):
    """The routed experts' weighted sum for each row (weights as `pack_weights` left them)."""
    return kernel_choice.impls["moe_experts"](x, topk_weights, topk_ids, w13, w2, expert_map)


def pack_weights(w13, w2):
    """The experts' weights in the layout this process's `moe_experts` reads (called once
    at load; the reference and the NPU read them as loaded)."""
    return kernel_choice.impls["moe_pack_weights"](w13, w2)
