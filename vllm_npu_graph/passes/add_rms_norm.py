"""Residual add + RMSNorm -> npu_graph::add_rms_norm, one op returning both the normed
output and the new residual (NPU: torch_npu.npu_add_rms_norm).

Matches vLLM's in-place IR op `vllm_ir.fused_add_rms_norm.maybe_inplace` as
functionalization leaves it (auto_functionalized_v2). Left alone when anything reads the
mutated input buffers afterwards (then the in-place effect is part of the program)."""

import operator

import torch
import torch.fx as fx

from vllm_npu_graph.passes._match import functionalized_calls, is_call, replace_node

NAME = "add_rms_norm"
NEEDS_IR_WRAP = True
DEFAULT_ON = ("npu", "quantized")


def run(graph: fx.Graph) -> int:
    import vllm.ir.ops  # noqa: F401

    from vllm_npu_graph.ops import fused  # noqa: F401

    count = 0
    for node in functionalized_calls(graph, torch.ops.vllm_ir.fused_add_rms_norm.maybe_inplace):
        kw = node.kwargs
        users = list(node.users)
        if kw.get("weight") is None or kw.get("variance_size") is not None:
            continue
        if not all(is_call(u, operator.getitem) and u.args[1] in (0, 1) for u in users):
            continue  # a mutated base is read: keep the in-place op
        bases = kw["_all_bases"]
        x, residual = bases[kw["_x_base_index"]], bases[kw["_x_residual_base_index"]]
        with graph.inserting_before(node):
            fused = graph.call_function(
                torch.ops.npu_graph.add_rms_norm.default, (x, residual, kw["weight"], float(kw["epsilon"]))
            )
            outs = [graph.call_function(operator.getitem, (fused, i)) for i in (0, 1)]
        for user in users:
            replace_node(user, outs[user.args[1]])
            graph.erase_node(user)
        graph.erase_node(node)
        count += 1
    return count
