"""Residual add + RMSNorm then W8A8's per-token quantization ->
npu_graph::add_rms_norm_quant, returning the int8 rows, their scales and the new residual
(NPU: torch_npu.npu_add_rms_norm_dynamic_quant).

Matches npu_graph::quant_per_token reading the normed output of npu_graph::add_rms_norm
(the `add_rms_norm` pass's output) and nothing else reading it."""

import operator

import torch
import torch.fx as fx

from vllm_npu_graph.passes._match import erase_chain, is_call, is_rows, sole_quant_reader

NAME = "add_rms_norm_quant"
NEEDS_IR_WRAP = False
DEFAULT_ON = ("npu", "quantized")
AFTER = ("add_rms_norm",)


def run(graph: fx.Graph) -> int:
    from vllm_npu_graph.ops import fused, quant  # noqa: F401  (registers the ops)

    count = 0
    for node in list(graph.nodes):
        if not is_call(node, torch.ops.npu_graph.add_rms_norm.default) or not is_rows(node.args[0]):
            continue
        outs = {user.args[1]: user for user in node.users if is_call(user, operator.getitem)}
        if len(outs) != len(node.users) or 0 not in outs:
            continue
        quantize, views = sole_quant_reader(outs[0])
        if quantize is None:
            continue
        with graph.inserting_before(node):
            new = graph.call_function(torch.ops.npu_graph.add_rms_norm_quant.default, node.args)
            summed = graph.call_function(operator.getitem, (new, 2))
        quantize.replace_all_uses_with(new)  # (int8, scale) keep their indices
        if 1 in outs:
            summed.meta.update(outs[1].meta)
            outs[1].replace_all_uses_with(summed)
            graph.erase_node(outs[1])
        erase_chain(graph, [node, outs[0], *views, quantize])
        count += 1
    return count
