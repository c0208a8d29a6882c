"""The LM head through our `npu_graph::linear` op (host native: a oneDNN GEMM on the
embedding matrix packed once; elsewhere F.linear, as vLLM does).

vLLM computes logits outside the compiled decoder, so no pass reaches it: we swap in
this LogitsProcessor subclass through vLLM's out-of-tree layer registry. On SmolLM2 the
head is the largest GEMM of a decode step (576 x 49,152)."""

import torch
from vllm.model_executor.layers.logits_processor import LogitsProcessor
from vllm.model_executor.layers.vocab_parallel_embedding import UnquantizedEmbeddingMethod


@LogitsProcessor.register_oot(name="LogitsProcessor")
class NPUGraphLogitsProcessor(LogitsProcessor):
    def _apply_head(self, lm_head, hidden_states: torch.Tensor, embedding_bias: torch.Tensor | None) -> torch.Tensor:
        plain = isinstance(lm_head.quant_method, UnquantizedEmbeddingMethod) and lm_head.weight.dim() == 2
        if not plain or (self.head_dtype is not None and self.head_dtype != hidden_states.dtype):
            return super()._apply_head(lm_head, hidden_states, embedding_bias)
        from vllm_npu_graph.ops import fused

        return fused.linear(hidden_states, lm_head.weight, embedding_bias)
