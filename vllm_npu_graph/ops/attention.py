"""The attention ops our backend calls (npu_graph:: ops; the hot ones through
ops/library.py).

Each has a schema, a fake impl (so Dynamo, Inductor and npugraph_ex see only the op),
and its implementations (torch reference, portable Triton kernels, the target's native
op), chosen once per process from the target and `kernels` option.

The ops taking `layer_name` are what our passes lower vLLM's attention ops to: they
find the layer's KV cache, slot mapping and metadata (device tensors) in vLLM's forward
context, as vLLM's own ops do, so the graph holds no host value.
"""

import torch
from vllm.model_executor.layers.attention.attention import get_attention_context
from vllm.utils.torch_utils import LayerNameType, _resolve_layer_name

from vllm_npu_graph.ops import kernel_choice
from vllm_npu_graph.ops.library import op


@op(
    "reshape_and_cache(Tensor key, Tensor value, Tensor(a!) kv_cache, Tensor slot_mapping) -> ()",
    fake=lambda key, value, kv_cache, slot_mapping: None,
)
def reshape_and_cache(key, value, kv_cache, slot_mapping):
    kernel_choice.impls["write_kv_cache"](key, value, kv_cache, slot_mapping)


# Attention of each request's query rows over its cached sequence; rows of no request
# are zero. max_query_len == 1 marks a decode batch; max_seq_len is a host hint (0 in
# graphs: a uniform batch of max_query_len tokens per request, the context bounded by
# the block table's width).
@op(
    "paged_attention(Tensor query, Tensor kv_cache, Tensor query_start_loc, Tensor seq_lens, Tensor block_table, "
    "float scale, SymInt sliding_window, SymInt max_query_len, SymInt max_seq_len) -> Tensor",
    fake=lambda query, *rest: query.new_empty(query.shape),
)
def paged_attention(
    query, kv_cache, query_start_loc, seq_lens, block_table, scale, sliding_window, max_query_len, max_seq_len
):
    window = sliding_window if sliding_window > 0 else None
    return kernel_choice.impls["paged_attention"](
        query, kv_cache, query_start_loc, seq_lens, block_table, scale, window, max_query_len, max_seq_len
    )


@torch.library.custom_op("npu_graph::qkv_rope_kv_write", mutates_args=())
def qkv_rope_kv_write(
    qkv: torch.Tensor,
    positions: torch.Tensor,
    cos_sin_cache: torch.Tensor,
    num_heads: int,
    num_kv_heads: int,
    head_size: int,
    q_norm_weight: torch.Tensor | None,
    k_norm_weight: torch.Tensor | None,
    eps: float,
    layer_name: LayerNameType,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """npu_graph::qkv_rope that also writes the rotated keys and the values to the
    layer's KV cache in the same kernel. The empty fourth output orders the attention
    op after the write (as vLLM's unified_kv_cache_update result does)."""
    _, _, kv_cache, slot_mapping = get_attention_context(_resolve_layer_name(layer_name))
    if slot_mapping is None:  # no KV cache yet (profiling run)
        kv_cache = None
    q, k, v = kernel_choice.impls["qkv_rope"](
        qkv,
        positions,
        cos_sin_cache,
        num_heads,
        num_kv_heads,
        head_size,
        q_norm_weight,
        k_norm_weight,
        eps,
        kv_cache,
        slot_mapping,
    )
    return q, k, v, qkv.new_empty(0)


@qkv_rope_kv_write.register_fake
def _(qkv, positions, cos_sin_cache, num_heads, num_kv_heads, head_size, q_norm_weight, k_norm_weight, eps, layer_name):
    t = qkv.shape[0]
    return (
        qkv.new_empty(t, num_heads, head_size),
        qkv.new_empty(t, num_kv_heads, head_size),
        qkv.new_empty(t, num_kv_heads, head_size),
        qkv.new_empty(0),
    )


@torch.library.custom_op("npu_graph::attention", mutates_args=())
def attention(query: torch.Tensor, kv_written: torch.Tensor, layer_name: LayerNameType) -> torch.Tensor:
    """Attention of `query` [T, H, D] over the layer's KV cache -> [T, H * D].
    `kv_written` is the KV write's ordering token (unused)."""
    metadata, layer, kv_cache, _ = get_attention_context(_resolve_layer_name(layer_name))
    out = query.new_empty(query.shape)
    layer.impl.attend(query, kv_cache, metadata, out)  # fills every row
    return out.flatten(1)


@attention.register_fake
def _(query, kv_written, layer_name):
    return query.new_empty(query.shape[0], query.shape[1] * query.shape[2])
