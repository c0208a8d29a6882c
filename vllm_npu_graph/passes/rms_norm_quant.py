"""RMSNorm then W8A8's per-token quantization -> npu_graph::rms_norm_quant, which writes
int8 rows and their scales instead of the normed rows (NPU: our Triton kernel; torch_npu
has RMSNorm + quant with static scales only).

Matches npu_graph::quant_per_token reading npu_graph::rms_norm (the `rms_norm` pass's
output) and nothing else reading the norm."""

import torch
import torch.fx as fx

from vllm_npu_graph.passes._match import fold_quant

NAME = "rms_norm_quant"
NEEDS_IR_WRAP = False
DEFAULT_ON = ("npu", "quantized")
AFTER = ("rms_norm",)


def run(graph: fx.Graph) -> int:
    from vllm_npu_graph.ops import fused, quant  # noqa: F401  (registers the ops)

    return fold_quant(graph, torch.ops.npu_graph.rms_norm.default, torch.ops.npu_graph.rms_norm_quant.default)
