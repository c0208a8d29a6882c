"""RoPE + KV-cache write folded: npu_graph::qkv_rope whose k and v feed vLLM's
unified_kv_cache_update -> npu_graph::qkv_rope_kv_write, which stores the rotated keys
and the values in the layer's cache in the same kernel (no second pass over k and v).

Runs after qkv_rope (it folds that pass's op; with qkv_rope off it finds nothing).
Applies where our attention backend owns the cache layout, which is every layer our
platform builds."""

import operator

import torch
import torch.fx as fx

from vllm_npu_graph.passes._match import is_call, replace_node

NAME = "rope_kv_write"
NEEDS_IR_WRAP = False
DEFAULT_ON = ("npu",)
AFTER = ("qkv_rope",)  # it matches npu_graph::qkv_rope


def _item_of(node, index):
    if (
        is_call(node, operator.getitem)
        and node.args[1] == index
        and is_call(node.args[0], torch.ops.npu_graph.qkv_rope.default)
    ):
        return node.args[0]
    return None


def run(graph: fx.Graph) -> int:
    import vllm.model_executor.layers.attention.attention  # noqa: F401  (registers torch.ops.vllm)

    from vllm_npu_graph.ops import attention, fused  # noqa: F401

    count = 0
    for update in list(graph.nodes):
        if not is_call(update, torch.ops.vllm.unified_kv_cache_update.default):
            continue
        key, value, layer_name = update.args[:3]
        rope = _item_of(key, 1)
        if rope is None or _item_of(value, 2) is not rope:
            continue
        with graph.inserting_before(rope):
            new = graph.call_function(torch.ops.npu_graph.qkv_rope_kv_write.default, (*rope.args, layer_name))
        for item in list(rope.users):
            with graph.inserting_before(item):
                replace_node(item, graph.call_function(operator.getitem, (new, item.args[1])))
            graph.erase_node(item)
        with graph.inserting_before(update):
            replace_node(update, graph.call_function(operator.getitem, (new, 3)))
        graph.erase_node(update)
        graph.erase_node(rope)
        count += 1
    return count
