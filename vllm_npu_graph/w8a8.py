"""W8A8 int8 linear layers (compressed-tensors checkpoints) through our ops.

vLLM 0.32 picks a W8A8 int8 layer's kernel from a per-platform table with no entry for
an out-of-tree platform; its hook for one is `register_linear_kernel(..., OOT, "int8")`.
Our kernel's `apply_weights` runs in Python under the linear layer, so Dynamo traces
`npu_graph::quant_per_token` and `npu_graph::int8_linear` into the decoder graph as
ordinary nodes our passes and targets see.

What we serve is checked against the checkpoint's quantization config before any
weight loads (`unsupported_scheme`): symmetric int8 weights (per channel, or per tensor
widened to per channel at load) with int8 activations quantized per token on the fly.
"""

import torch
from vllm.model_executor.kernels.linear import register_linear_kernel
from vllm.model_executor.kernels.linear.scaled_mm.ScaledMMLinearKernel import (
    Int8ScaledMMLinearKernel,
    Int8ScaledMMLinearLayerConfig,
)
from vllm.model_executor.layers.quantization.utils.w8a8_utils import convert_to_channelwise
from vllm.model_executor.utils import replace_parameter
from vllm.platforms import PlatformEnum, current_platform

from vllm_npu_graph.config import MOE_ARCHITECTURES
from vllm_npu_graph.ops import quant as quant_ops

SUPPORTED = (
    "compressed-tensors W8A8 int8 (symmetric int8 weights per channel or per tensor, "
    "int8 activations quantized per token on the fly)"
)


def _int8_problem(args: dict, what: str) -> str | None:
    if args.get("num_bits") != 8 or args.get("type") != "int":
        return f"{args.get('num_bits')}-bit {args.get('type')} {what}"
    if not args.get("symmetric", True):
        return f"asymmetric {what} (zero points)"
    return None


def _weights_problem(args: dict | None) -> str | None:
    if not args:
        return "no weight quantization"
    if problem := _int8_problem(args, "weights"):
        return problem
    if args.get("strategy") not in ("channel", "tensor"):
        return f"weight scales per {args.get('strategy')}"
    if args.get("dynamic"):
        return "dynamic weight scales"
    return None


def _activations_problem(args: dict | None) -> str | None:
    if not args:
        return "weight-only quantization (W8A16)"
    if problem := _int8_problem(args, "activations"):
        return problem
    if not (args.get("dynamic") and args.get("strategy") == "token"):
        return f"static activation scales (per {args.get('strategy')})"
    return None


def unsupported_scheme(method: str, config: dict | None, architectures: list[str]) -> str | None:
    """What about this checkpoint's quantization we do not serve, or None."""
    if method != "compressed-tensors":
        return f"quantization method {method!r}"
    config = config or {}
    if any(arch in MOE_ARCHITECTURES for arch in architectures):
        return "quantized mixture-of-experts layers"
    for key, what in (
        ("kv_cache_scheme", "a quantized KV cache"),
        ("sparsity_config", "sparsity"),
        ("transform_config", "transforms"),
    ):
        if config.get(key):
            return what
    groups = config.get("config_groups") or {}
    if not groups:
        return "no quantization groups"
    for name, group in groups.items():
        if group.get("output_activations"):
            return f"quantized output activations (group {name})"
        problem = _weights_problem(group.get("weights")) or _activations_problem(group.get("input_activations"))
        if problem:
            return f"{problem} (group {name})"
    if config.get("format") not in ("int-quantized", None):
        return f"format {config.get('format')!r}"
    return None


def check_model(model_config) -> str | None:
    """The refusal line for a quantized model we can't serve, or None."""
    if model_config is None or model_config.quantization is None:
        return None
    config = getattr(model_config.hf_config, "quantization_config", None)
    config = config if isinstance(config, dict) else getattr(config, "to_dict", lambda: None)()
    problem = unsupported_scheme(model_config.quantization, config, model_config.architectures or [])
    return None if problem is None else refusal(problem)


def refusal(problem: str) -> str:
    return f"vllm-npu-graph serves {SUPPORTED}; this checkpoint has {problem}."


class NPUGraphInt8Kernel(Int8ScaledMMLinearKernel):
    """Per-token dynamic int8 activations times the target's packed int8 weight."""

    @classmethod
    def is_supported(cls, compute_capability: int | None = None) -> tuple[bool, str | None]:
        if not current_platform.is_out_of_tree():
            return False, "requires the vllm-npu-graph platform"
        return True, None

    @classmethod
    def can_implement(cls, c: Int8ScaledMMLinearLayerConfig) -> tuple[bool, str | None]:
        if c.is_static_input_scheme or not c.input_symmetric:
            return False, "serves symmetric per-token dynamic activations only"
        return True, None

    def process_weights_after_loading(self, layer: torch.nn.Module) -> None:
        w_name, scale_name, _, _, _ = self.layer_param_names
        weight = getattr(layer, w_name).data  # [N, K] int8
        scale = getattr(layer, scale_name).data
        if not self.config.is_channelwise:
            scale = convert_to_channelwise(scale, layer.logical_widths)
        scale = scale.reshape(-1).float().contiguous()
        out_dtype = getattr(layer, "params_dtype", None) or torch.get_default_dtype()
        packed, keep_alive = quant_ops.pack_int8_weight(weight, scale, out_dtype)
        replace_parameter(layer, w_name, torch.nn.Parameter(packed, requires_grad=False))
        replace_parameter(layer, scale_name, torch.nn.Parameter(scale, requires_grad=False))
        layer.npu_graph_int8_pack = keep_alive

    def apply_weights(self, layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        w_name, scale_name, _, _, _ = self.layer_param_names
        weight_scale = getattr(layer, scale_name)
        rows = x.reshape(-1, x.shape[-1])
        x_q, x_scale = quant_ops.quant_per_token(rows)
        out = quant_ops.int8_linear(x_q, x_scale, getattr(layer, w_name), weight_scale, bias, x.dtype)
        return out.reshape(*x.shape[:-1], weight_scale.shape[0])


register_linear_kernel(NPUGraphInt8Kernel, PlatformEnum.OOT, "int8")
