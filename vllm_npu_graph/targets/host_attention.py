"""The host target's attention lowering: one op per layer for vLLM's KV-cache write and
attention.

A replayed host graph is Python calling ops, and vLLM's two attention ops cost a layer
~45 us of Python around ~10 us of kernels (decorators, two forward-context lookups, a
dummy dependency tensor). After our attention pass (on by default on the host), this step
fuses each layer's `unified_kv_cache_update` and `npu_graph::attention` into
`npu_graph_host::attention`, which looks the layer up once and calls our backend's write
and attention, so the kernels (and the `kernels` choice) are the same as before (with
the native kernels, write and attention are one C++ call: `cache_and_attend`); with the
attention pass switched off, vLLM's pair stays. A device graph replays kernels, not
Python: the NPU keeps the pair.
"""

import torch
import torch.fx as fx
from vllm.model_executor.layers.attention.attention import get_attention_context
from vllm.utils.torch_utils import LayerNameType, _resolve_layer_name

from vllm_npu_graph.ops import kernel_choice
from vllm_npu_graph.passes._match import is_call, replace_node

NAME = "host_attention"  # the lowering step's name in the pass log
_LIB = torch.library.Library("npu_graph_host", "FRAGMENT")


def attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, layer_name: LayerNameType) -> torch.Tensor:
    """Writes key and value to the layer's KV cache, then returns the attention of
    `query` [T, H, D] over it as [T, H * D] (what the pair computed)."""
    metadata, layer, kv_cache, slot_mapping = get_attention_context(_resolve_layer_name(layer_name))
    native = kernel_choice.impls.get("cache_and_attend")
    if native is not None and metadata is not None:  # native kernels: one C++ call
        impl = layer.impl
        return native(
            query,
            key,
            value,
            kv_cache,
            slot_mapping,
            metadata.query_start_loc,
            metadata.seq_lens,
            metadata.block_table,
            impl.scale,
            impl.sliding_window or -1,
        )
    if slot_mapping is not None:  # None: no KV cache yet (profiling run)
        layer.impl.do_kv_cache_update(layer, key, value, kv_cache, slot_mapping)
    out = query.new_empty(query.shape)
    layer.impl.attend(query, kv_cache, metadata, out)
    return out.flatten(1)


_LIB.define("attention" + torch.library.infer_schema(attention, mutates_args=()))
_LIB.impl("attention", attention, "CPU")
_LIB._register_fake(
    "attention", lambda query, key, value, layer_name: query.new_empty(query.shape[0], query.shape[1] * query.shape[2])
)


def lower(graph: fx.Graph) -> int:
    """Each npu_graph::attention whose ordering token is the same layer's
    `unified_kv_cache_update` (and its only user) -> npu_graph_host::attention."""
    from vllm_npu_graph.ops import attention  # noqa: F401  (defines npu_graph::attention)

    count = 0
    for node in list(graph.nodes):
        if not is_call(node, torch.ops.npu_graph.attention.default):
            continue
        query, write, layer_name = node.args
        if not is_call(write, torch.ops.vllm.unified_kv_cache_update.default) or len(write.users) != 1:
            continue
        key, value, write_layer = write.args
        if write_layer is not layer_name:
            continue
        with graph.inserting_before(node):
            fused = graph.call_function(torch.ops.npu_graph_host.attention.default, (query, key, value, layer_name))
        replace_node(node, fused)
        graph.erase_node(node)
        graph.erase_node(write)
        count += 1
    return count
