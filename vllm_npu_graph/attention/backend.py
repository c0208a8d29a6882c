"""Our vLLM attention backend (registered as AttentionBackendEnum.CUSTOM).

Metadata stays in device tensors (query_start_loc, seq_lens, block_table,
slot_mapping). Uniform decode batches (one token per request, or with speculative
decoding its token and k drafts) read nothing else, so a graph captured for one
replays any such batch of its size at any context length; prefill and mixed batches
also use host ints (grid sizes) and run eagerly. The KV-cache write is a separate op
(`forward_includes_kv_cache_update` is False), which lets a pass fold RoPE into it.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from vllm.config import CUDAGraphMode
from vllm.forward_context import get_forward_context
from vllm.v1.attention.backend import (
    AttentionBackend,
    AttentionCGSupport,
    AttentionImpl,
    AttentionMetadataBuilder,
    AttentionType,
    CommonAttentionMetadata,
    MultipleOf,
)
from vllm.v1.kv_cache_layout import KVCacheLayout

from vllm_npu_graph.ops import attention as ops


@dataclass
class NPUGraphAttentionMetadata:
    num_actual_tokens: int
    max_query_len: int  # host hints: prefill/mixed batches only (never in a graph)
    max_seq_len: int
    decode_query_len: int  # query tokens per request in a decode step (1 + speculative tokens)
    decode_only: bool  # no request has more than decode_query_len query tokens
    query_start_loc: torch.Tensor  # [num_reqs + 1]
    seq_lens: torch.Tensor  # [num_reqs]
    block_table: torch.Tensor  # [num_reqs, max_blocks]
    slot_mapping: torch.Tensor  # [num_tokens], -1 for padding


class NPUGraphAttentionMetadataBuilder(AttentionMetadataBuilder[NPUGraphAttentionMetadata]):
    # Uniform decode batches read every length and table from tensors, so a graph
    # replays any such batch of its size; vLLM then captures uniform decode batches
    # only (1 + num_speculative_tokens query tokens per request).
    _cudagraph_support: ClassVar[AttentionCGSupport] = AttentionCGSupport.UNIFORM_BATCH

    def __init__(self, kv_cache_spec, layer_names, vllm_config, device):  # abstract in vLLM's base
        super().__init__(kv_cache_spec, layer_names, vllm_config, device)
        self.decode_query_len = 1 + vllm_config.num_speculative_tokens

    def build(
        self, common_prefix_len: int, common_attn_metadata: CommonAttentionMetadata, fast_build: bool = False
    ) -> NPUGraphAttentionMetadata:
        m = common_attn_metadata
        num_reqs = m.num_reqs
        return NPUGraphAttentionMetadata(
            num_actual_tokens=m.num_actual_tokens,
            max_query_len=m.max_query_len,
            max_seq_len=m.max_seq_len,
            decode_query_len=self.decode_query_len,
            decode_only=m.max_query_len <= self.decode_query_len,
            query_start_loc=m.query_start_loc[: num_reqs + 1],
            seq_lens=m.seq_lens[:num_reqs],
            block_table=m.block_table_tensor[:num_reqs],
            slot_mapping=m.slot_mapping,
        )


class NPUGraphAttentionImpl(AttentionImpl[NPUGraphAttentionMetadata]):
    def __init__(
        self,
        num_heads: int,
        head_size: int,
        scale: float,
        num_kv_heads: int | None = None,
        alibi_slopes: list[float] | None = None,
        sliding_window: int | None = None,
        kv_cache_dtype: str = "auto",
        logits_soft_cap: float | None = None,
        attn_type: str = AttentionType.DECODER,
        kv_sharing_target_layer_name: str | None = None,
        **unsupported,
    ) -> None:
        problems = [name for name, value in unsupported.items() if value not in (None, False, -1)]
        if alibi_slopes is not None:
            problems.append("alibi_slopes")
        if logits_soft_cap:
            problems.append("logits_soft_cap")
        if attn_type != AttentionType.DECODER:
            problems.append(f"attn_type={attn_type}")
        if kv_cache_dtype != "auto":
            problems.append(f"kv_cache_dtype={kv_cache_dtype}")
        if problems:
            raise NotImplementedError(f"vllm-npu-graph attention does not support: {', '.join(problems)}.")
        self.num_heads = num_heads
        self.head_size = head_size
        self.scale = float(scale)
        self.num_kv_heads = num_kv_heads or num_heads
        self.sliding_window = sliding_window
        self.kv_cache_dtype = kv_cache_dtype
        self.attn_type = attn_type
        self.kv_sharing_target_layer_name = kv_sharing_target_layer_name

    def do_kv_cache_update(self, layer, key, value, kv_cache, slot_mapping) -> None:
        ops.reshape_and_cache(key, value, kv_cache, slot_mapping)

    def forward(
        self,
        layer,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_cache: torch.Tensor,
        attn_metadata: NPUGraphAttentionMetadata,
        output: torch.Tensor,
        output_scale: torch.Tensor | None = None,
        output_block_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if output_scale is not None or output_block_scale is not None:
            raise NotImplementedError("fused output quantization is not supported by vllm-npu-graph.")
        return self.attend(query, kv_cache, attn_metadata, output)

    def attend(self, query, kv_cache, attn_metadata: NPUGraphAttentionMetadata | None, output) -> torch.Tensor:
        """output = attention of every request's query tokens; rows of no request
        (padding) are zero. Reads no host int in a graph (a device graph would freeze
        it): graphs serve uniform decode batches only, whose query length is fixed by
        the configuration; the KV loop is sized from the device lengths, bounded by the
        block table's width."""
        if attn_metadata is None:  # profiling run: no KV cache yet
            return output.fill_(0)
        m = attn_metadata
        if get_forward_context().cudagraph_runtime_mode == CUDAGraphMode.FULL:
            max_query_len, max_seq_len = m.decode_query_len, 0
        else:
            max_query_len, max_seq_len = m.max_query_len, m.max_seq_len
        output.copy_(
            ops.paged_attention(
                query,
                kv_cache,
                m.query_start_loc,
                m.seq_lens,
                m.block_table,
                self.scale,
                self.sliding_window or 0,
                max_query_len,
                max_seq_len,
            )
        )
        return output


class NPUGraphAttentionBackend(AttentionBackend):
    supported_dtypes: ClassVar[list[torch.dtype]] = [torch.float16, torch.bfloat16, torch.float32]
    supported_kv_cache_dtypes: ClassVar[list] = ["auto"]
    forward_includes_kv_cache_update: bool = False

    @staticmethod
    def get_name() -> str:
        return "CUSTOM"

    @staticmethod
    def get_impl_cls() -> type[NPUGraphAttentionImpl]:
        return NPUGraphAttentionImpl

    @staticmethod
    def get_builder_cls() -> type[NPUGraphAttentionMetadataBuilder]:
        return NPUGraphAttentionMetadataBuilder

    @staticmethod
    def get_supported_kernel_block_sizes(kv_cache_spec=None) -> list:
        return [MultipleOf(16)]

    @classmethod
    def get_supported_head_sizes(cls) -> list[int]:
        return list(range(16, 257, 16))

    @classmethod
    def supports_sliding_window(cls) -> bool:
        return True

    @classmethod
    def supported_kv_cache_layouts(cls) -> tuple[KVCacheLayout, ...]:
        # The target's physical layout. NPU: [blocks, block_size, kv_heads, 2*head_size]
        # (one token's heads contiguous: dense cache write and block gather); host:
        # head-major, as vLLM's CPU attention (the host's native kernel) reads it.
        from vllm_npu_graph.targets import get_target

        return (KVCacheLayout[get_target().kv_cache_layout],)
