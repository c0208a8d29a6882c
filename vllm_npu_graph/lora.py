"""LoRA adapters in the compiled decoder: vLLM's LoRA layers call a punica wrapper
(which the platform names) for every adapted linear; ours sends each call to our
opaque LoRA ops (ops/lora.py).

What makes it serve graphs: the per-token slot indices stay in the fixed buffers vLLM
fills each step (copied in place, outside the graph) and are read only as a slice of
the batch's token count, so a captured graph reads the current step's mapping; every
call computes the same ops whatever the mapping (no branch on "no adapter active", no
per-step Python state frozen in), so graphs captured with dummy adapters serve real
ones; an index of -1 (the base model) adds exactly zero.
"""

import torch
from vllm.lora.punica_wrapper.punica_base import PunicaWrapperBase

from vllm_npu_graph.ops import lora as lora_ops


class NPUGraphPunicaWrapper(PunicaWrapperBase):
    def update_metadata(self, mapping, lora_index_to_id, max_loras, vocab_size, **kwargs):
        # Only the per-token indices: the base class's prefill metadata (segments of
        # equal adapters) costs host syncs our ops don't need.
        self._update_base_metadata(mapping, lora_index_to_id, max_loras, vocab_size)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self._token_lora_indices[: x.size(0)]

    def add_shrink(self, y, x, lora_a_stacked, scale, **kwargs):
        raise NotImplementedError("fully sharded LoRA layers are refused by check_lora")

    def add_expand(self, y, x, lora_b_stacked, output_slices, offset_start=0, add_inputs=True, **kwargs):
        raise NotImplementedError("fully sharded LoRA layers are refused by check_lora")

    def add_lora_embedding(self, y, x, lora_b_stacked, add_inputs=True, **kwargs):
        delta = lora_ops.lora_expand(x, self._tokens(x), lora_b_stacked)
        if add_inputs:
            y += delta
        else:
            y.copy_(delta)

    def add_lora_linear(self, y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, *, buffer=None, **kwargs):
        x = x.view(-1, x.shape[-1])
        flat = y.view(-1, y.shape[-1])
        delta = lora_ops.lora_linear(x, self._tokens(x), list(lora_a_stacked), list(lora_b_stacked), scale)
        flat[:, : delta.shape[1]] += delta

    def add_lora_logits(self, y, x, lora_a_stacked, lora_b_stacked, scale, *, buffer=None, **kwargs):
        x = x.view(-1, x.shape[-1])
        indices = self._sampler_indices[: x.size(0)]  # one row per sampled token
        delta = lora_ops.lora_linear(x, indices, [lora_a_stacked], [lora_b_stacked], scale)
        width = min(y.shape[-1], delta.shape[-1])
        y[:, :width] += delta[:, :width].to(y.dtype)

    def apply_lora_full_linear(self, y, x, weight_stacked, bias_stacked, module_enabled):
        raise NotImplementedError("vllm-npu-graph serves LoRA on generative models only (no classifier adapters).")


def check_lora(vllm_config) -> str | None:
    """The refusal line for a LoRA set-up we have not built or tested, or None."""
    from vllm_npu_graph.config import MOE_ARCHITECTURES

    if vllm_config.lora_config is None:
        return None
    model, parallel = vllm_config.model_config, vllm_config.parallel_config
    problem = None
    if model is not None and any(arch in MOE_ARCHITECTURES for arch in model.architectures or []):
        problem = "on a mixture-of-experts model"
    elif model is not None and model.runner_type == "pooling":
        problem = "on a pooling model"
    elif model is not None and model.quantization is not None:
        problem = f"on a quantized ({model.quantization}) checkpoint"
    elif parallel.tensor_parallel_size > 1 or parallel.pipeline_parallel_size > 1:
        problem = "with tensor or pipeline parallelism"
    elif vllm_config.lora_config.fully_sharded_loras:
        problem = "with --fully-sharded-loras"
    elif vllm_config.speculative_config is not None:
        problem = "with speculative decoding"
    if problem is None:
        return None
    return (
        f"vllm-npu-graph serves LoRA adapters on float dense generative models on one worker; not {problem} "
        "(drop --enable-lora or that option)."
    )
