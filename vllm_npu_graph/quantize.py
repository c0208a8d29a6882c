"""Offline W8A8 quantization of a float HF folder into a compressed-tensors checkpoint
(what Ascend users download: int8 weights with a float32 scale per output channel, and
a config telling the server to quantize activations per token on the fly).

Small models such as SmolLM2 carry activation outliers (a few channels hundreds of
times larger than the rest); a per-token scale set by them leaves the other channels a
handful of int8 levels. So, as production W8A8 recipes do, the outliers are first
migrated into the weights (SmoothQuant, alpha 0.5): each linear's input channel j is
divided by s_j = sqrt(max|x_j| / max|w_j|) and its weight column multiplied by it, the
division folded into what produces that input (the RMSNorm's weight for q/k/v and
gate/up, up_proj's rows for down_proj), so the float model is unchanged. max|x_j| comes
from a calibration text that is not the one the tests score (pydoc's topic help, which
ships with every CPython). Then every decoder linear (`*_proj`) is quantized per output
channel; the embeddings and the LM head stay float.

    python -m vllm_npu_graph.quantize SRC_FOLDER OUT_FOLDER
    vllm-npu-graph serve --quantized    (the embedded default model, W8A8)
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from vllm_npu_graph.kernels.quant_reference import quantize_weight
from vllm_npu_graph.models import build_default_model, default_model_dir, publish


def quantization_config() -> dict:
    """compressed-tensors' own W8A8 preset (int8 channel weights, int8 dynamic per-token
    activations) as the config.json entry vLLM reads."""
    from compressed_tensors.quantization import QuantizationConfig, preset_name_to_scheme

    config = QuantizationConfig(
        config_groups={"group_0": preset_name_to_scheme("W8A8", ["Linear"])},
        format="int-quantized",
        ignore=["lm_head"],
        quantization_status="compressed",
    )
    return json.loads(config.model_dump_json(exclude_none=True))


def is_quantized_weight(name: str, tensor: torch.Tensor) -> bool:
    return name.endswith("_proj.weight") and tensor.dim() == 2 and tensor.is_floating_point()


def quantize_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for name, tensor in tensors.items():
        if is_quantized_weight(name, tensor):
            q, scale = quantize_weight(tensor)
            out[name] = q
            out[name.removesuffix("weight") + "weight_scale"] = scale
        else:
            out[name] = tensor
    return out


CALIBRATION_TOKENS = 1024
ALPHA = 0.5


def calibration_text() -> str:
    from pydoc_data import topics

    return "\n\n".join(topics.topics[name] for name in sorted(topics.topics))


@torch.no_grad()
def input_absmax(model, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per input channel max |x| of each q_proj, gate_proj and down_proj over the text."""
    seen, hooks = {}, []
    for name, module in model.named_modules():
        if name.endswith(("q_proj", "gate_proj", "down_proj")):

            def hook(mod, args, name=name):
                seen[name] = args[0].reshape(-1, args[0].shape[-1]).abs().amax(0)

            hooks.append(module.register_forward_pre_hook(hook))
    model(ids)
    for h in hooks:
        h.remove()
    return seen


def _smooth(act_max: torch.Tensor, linears: list, into: torch.Tensor) -> None:
    """Scale the linears' input columns by s and divide `into` (the producer's weight
    along those channels: a norm weight, or rows of up_proj) by it."""
    w_max = torch.stack([lin.weight.abs().amax(0) for lin in linears]).amax(0)
    s = (act_max.clamp(min=1e-5) ** ALPHA / w_max.clamp(min=1e-5) ** (1 - ALPHA)).clamp(min=1e-5)
    for lin in linears:
        lin.weight.mul_(s)
    into.div_(s.view(-1, *([1] * (into.dim() - 1))))


@torch.no_grad()
def smooth_model(model, tokenizer) -> None:
    ids = torch.tensor([tokenizer(calibration_text())["input_ids"][:CALIBRATION_TOKENS]])
    act = input_absmax(model, ids)
    for i, layer in enumerate(model.model.layers):
        attn, mlp, prefix = layer.self_attn, layer.mlp, f"model.layers.{i}"
        qkv = [attn.q_proj, attn.k_proj, attn.v_proj]
        _smooth(act[f"{prefix}.self_attn.q_proj"], qkv, layer.input_layernorm.weight)
        _smooth(act[f"{prefix}.mlp.gate_proj"], [mlp.gate_proj, mlp.up_proj], layer.post_attention_layernorm.weight)
        _smooth(act[f"{prefix}.mlp.down_proj"], [mlp.down_proj], mlp.up_proj.weight)


def build_w8a8(source: Path, out: Path, replace: bool = False) -> Path:
    """The W8A8 checkpoint of `source` (built once; tokenizer and generation config copied)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, out = Path(source), Path(out)
    if (out / "model.safetensors").is_file() and not replace:
        return out

    def write(folder: Path) -> None:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
        smooth_model(model, AutoTokenizer.from_pretrained(source))
        tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
        if model.config.tie_word_embeddings:
            tensors.pop("lm_head.weight", None)
        save_file(quantize_tensors(tensors), folder / "model.safetensors", metadata={"format": "pt"})
        config = json.loads((source / "config.json").read_text())
        config["quantization_config"] = quantization_config()
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        for extra in source.iterdir():
            if extra.suffix != ".safetensors" and extra.name not in ("config.json", "model.safetensors.index.json"):
                shutil.copy(extra, folder / extra.name)

    return publish(write, out, replace)


def build_default_w8a8() -> Path:
    """The W8A8 checkpoint of the embedded default model (`serve --quantized`)."""
    default = build_default_model()
    return build_w8a8(default, default_model_dir().with_name(f"{default.name}-W8A8"))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.rsplit("\n\n", 1)[-1].strip())
    print(build_w8a8(Path(sys.argv[1]), Path(sys.argv[2])))
