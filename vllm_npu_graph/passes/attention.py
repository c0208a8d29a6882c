"""vLLM's attention op -> npu_graph::attention.

Matches auto_functionalized_v2(vllm.unified_attention_with_output) writing into a fresh
[T, H*D] buffer with no output quantization, and replaces it with our functional op,
which runs the paged-attention kernel on the layer's KV cache with every length and
table read from device tensors (no host value, so any batch replays). The functional
form drops the output buffer and the mutation wrapper from the graph."""

import operator

import torch
import torch.fx as fx

from vllm_npu_graph.passes._match import aten, functionalized_calls, is_call, replace_node

NAME = "attention"
NEEDS_IR_WRAP = False
DEFAULT_ON = ("npu", "host")  # host: its lowering fuses the KV write in (targets/host_attention.py)


def run(graph: fx.Graph) -> int:
    import vllm.model_executor.layers.attention.attention  # noqa: F401  (registers torch.ops.vllm)

    from vllm_npu_graph.ops import attention  # noqa: F401

    count = 0
    for node in functionalized_calls(graph, torch.ops.vllm.unified_attention_with_output.default):
        kw = node.kwargs
        bases = kw.get("_all_bases") or []
        if len(bases) != 1 or kw.get("_output_base_index") != 0 or kw.get("kv_cache_dummy_dep") is None:
            continue
        if kw.get("output_scale") is not None or kw.get("output_block_scale") is not None:
            continue
        query, buffer = kw["query"], bases[0]
        users = list(node.users)
        if query.meta["val"].dim() != 3 or not all(is_call(u, operator.getitem) and u.args[1] == 1 for u in users):
            continue
        if not is_call(buffer, aten.empty.memory_format) or len(buffer.users) != 1:
            continue
        t, h, d = query.meta["val"].shape
        if buffer.meta["val"].dim() != 2 or buffer.meta["val"].shape[1] != h * d:
            continue
        with graph.inserting_before(node):
            new = graph.call_function(
                torch.ops.npu_graph.attention.default, (query, kw["kv_cache_dummy_dep"], kw["layer_name"])
            )
        for user in users:
            replace_node(user, new)
            graph.erase_node(user)
        graph.erase_node(node)
        graph.erase_node(buffer)
        count += 1
    return count
