"""The attention ops our backend calls (torch.library custom ops).

Each has a schema, a fake impl (so Dynamo, Inductor and npugraph_ex see only the op),
and two implementations: the torch reference and the portable Triton kernels. Which
one runs is chosen once per process from the target and `kernels` option.
"""

import torch

from vllm_npu_graph.ops import kernel_choice


@torch.library.custom_op("npu_graph::reshape_and_cache", mutates_args=("kv_cache",))
def reshape_and_cache(key: torch.Tensor, value: torch.Tensor, kv_cache: torch.Tensor, slot_mapping: torch.Tensor) -> None:
    kernel_choice.impls["write_kv_cache"](key, value, kv_cache, slot_mapping)


@reshape_and_cache.register_fake
def _(key, value, kv_cache, slot_mapping) -> None:
    return None


@torch.library.custom_op("npu_graph::paged_attention", mutates_args=())
def paged_attention(
    query: torch.Tensor, kv_cache: torch.Tensor, query_start_loc: torch.Tensor, seq_lens: torch.Tensor,
    block_table: torch.Tensor, scale: float, sliding_window: int, max_query_len: int, max_seq_len: int,
) -> torch.Tensor:
    window = sliding_window if sliding_window > 0 else None
    return kernel_choice.impls["paged_attention"](
        query, kv_cache, query_start_loc, seq_lens, block_table, scale, window, max_query_len, max_seq_len
    )


@paged_attention.register_fake
def _(query, kv_cache, query_start_loc, seq_lens, block_table, scale, sliding_window, max_query_len, max_seq_len):
    return torch.empty_like(query)
