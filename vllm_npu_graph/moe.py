"""Mixture-of-experts layers through our ops, inside the one decoder graph.

vLLM 0.32 runs an out-of-tree platform's MoE layer as one opaque `vllm.moe_forward`
op with no expert kernel behind it (the unquantized oracle answers "OOT") and a router
that calls `_moe_C.topk_softmax`, which neither vLLM's CPU wheel nor an NPU build has.
Through vLLM's out-of-tree layer registry we swap in:

- `NPUGraphMoERunner`: the runner calls its layer as plain Python (as vLLM's CPU
  platform does), so Dynamo traces every MoE layer into the decoder graph: the gate
  GEMM, our gating op and our experts op become graph nodes our passes and targets see.
- `NPUGraphUnquantizedMoEMethod`: monolithic (routing included) through
  `npu_graph::moe_topk_softmax` and `npu_graph::moe_experts`, weights packed once at
  load for the target's kernel. Routing variants it does not implement are refused
  when the layer is built, before any weight loads.
"""

import torch
from vllm.model_executor.layers.fused_moe.activation import MoEActivation
from vllm.model_executor.layers.fused_moe.runner.moe_runner import MoERunner, _moe_forward, _moe_forward_shared
from vllm.model_executor.layers.fused_moe.unquantized_fused_moe_method import UnquantizedFusedMoEMethod
from vllm.model_executor.utils import replace_parameter

from vllm_npu_graph.log import get_logger
from vllm_npu_graph.ops import moe as moe_ops

logger = get_logger(__name__)
_buffers_logged = False


class UnsupportedMoEError(ValueError):
    """A MoE layer variant our experts op does not compute."""


def unsupported_routing(layer) -> str | None:
    """What about this layer's routing or experts we do not serve, or None."""
    checks = (
        (layer.use_grouped_topk, "grouped top-k routing (DeepSeek-V3 style)"),
        (layer.e_score_correction_bias is not None, "score-correction bias in routing"),
        (layer.custom_routing_function is not None, "a custom routing function"),
        (layer.scoring_func != "softmax", f"scoring function {layer.scoring_func!r}"),
        (layer.routed_scaling_factor != 1.0, f"routed scaling factor {layer.routed_scaling_factor}"),
        (layer.apply_router_weight_on_input, "router weights applied on the input"),
        (layer.activation != MoEActivation.SILU, f"expert activation {layer.activation}"),
    )
    return next((what for bad, what in checks if bad), None)


@MoERunner.register_oot
class NPUGraphMoERunner(MoERunner):
    def _select_forward(self):
        return _moe_forward if self._shared_experts is None else _moe_forward_shared


@UnquantizedFusedMoEMethod.register_oot
class NPUGraphUnquantizedMoEMethod(UnquantizedFusedMoEMethod):
    @property
    def is_monolithic(self) -> bool:
        return True

    def create_weights(self, layer, *args, **kwargs) -> None:
        problem = unsupported_routing(layer)
        if problem is None and getattr(self.moe, "has_bias", False):
            problem = "expert biases"
        if problem is not None:
            raise UnsupportedMoEError(
                f"vllm-npu-graph serves softmax top-k MoE layers with SiLU experts "
                f"(Qwen3-MoE, Mixtral, Qwen2-MoE); {layer.layer_name} uses {problem}."
            )
        super().create_weights(layer, *args, **kwargs)

    def process_weights_after_loading(self, layer) -> None:
        super().process_weights_after_loading(layer)  # the OOT branch: weights as loaded
        w13, w2 = moe_ops.pack_weights(layer.w13_weight.data, layer.w2_weight.data)
        replace_parameter(layer, "w13_weight", w13)
        replace_parameter(layer, "w2_weight", w2)
        log_buffer_assumption(layer)

    def apply_monolithic(self, layer, x: torch.Tensor, router_logits: torch.Tensor, input_ids=None) -> torch.Tensor:
        weights, ids = moe_ops.topk_softmax(router_logits, layer.top_k, layer.renormalize)
        return moe_ops.experts(x, weights, ids, layer.w13_weight, layer.w2_weight, layer.expert_map)


def log_buffer_assumption(layer) -> None:
    """Say once what the memory profile and graph capture assumed about routing."""
    global _buffers_logged
    if _buffers_logged:
        return
    _buffers_logged = True
    logger.info(
        "npu_graph: MoE layers (%d experts here of %d, top-%d) are dropless with routing-independent "
        "buffer shapes (rows x top-k expanded rows at every batch size, counts kept on the device), "
        "so the profile run and graph capture size them for any routing, every row to one expert included.",
        layer.local_num_experts,
        layer.global_num_experts,
        layer.top_k,
    )
