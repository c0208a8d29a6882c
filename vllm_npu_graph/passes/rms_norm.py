"""RMSNorm -> npu_graph::rms_norm (NPU: torch_npu.npu_rms_norm).

Matches vLLM's IR op `vllm_ir.rms_norm(x, weight, eps)` (kept as an op when vLLM wraps
its IR ops). Applies when a weight is given and the variance covers the whole row."""

import torch
import torch.fx as fx

from vllm_npu_graph.passes._match import is_call, replace_node

NAME = "rms_norm"
NEEDS_IR_WRAP = True
DEFAULT_ON = ("npu", "quantized")


def run(graph: fx.Graph) -> int:
    import vllm.ir.ops  # noqa: F401  (registers torch.ops.vllm_ir)

    from vllm_npu_graph.ops import fused  # noqa: F401  (registers torch.ops.npu_graph)

    count = 0
    for node in list(graph.nodes):
        if not is_call(node, torch.ops.vllm_ir.rms_norm.default):
            continue
        x, weight, eps, *rest = node.args
        if weight is None or (rest and rest[0] is not None) or node.kwargs.get("variance_size") is not None:
            continue
        with graph.inserting_before(node):
            new = graph.call_function(torch.ops.npu_graph.rms_norm.default, (x, weight, float(eps)))
        replace_node(node, new)
        graph.erase_node(node)
        count += 1
    return count
