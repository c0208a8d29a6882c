"""SwiGLU then W8A8's per-token quantization -> npu_graph::swiglu_quant, which writes the
down projection's int8 input and its scales (NPU: torch_npu.npu_swiglu_quant).

Matches npu_graph::quant_per_token reading npu_graph::swiglu (the `swiglu` pass's
output) and nothing else reading the activation."""

import torch
import torch.fx as fx

from vllm_npu_graph.passes._match import fold_quant

NAME = "swiglu_quant"
NEEDS_IR_WRAP = False
DEFAULT_ON = ("npu", "quantized")
AFTER = ("swiglu",)


def run(graph: fx.Graph) -> int:
    from vllm_npu_graph.ops import fused, quant  # noqa: F401  (registers the ops)

    return fold_quant(graph, torch.ops.npu_graph.swiglu.default, torch.ops.npu_graph.swiglu_quant.default)
