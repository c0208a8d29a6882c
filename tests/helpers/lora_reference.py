"""The reference for LoRA: Hugging Face's base model with the adapter merged into its
weights (W += alpha / r * B @ A), read from the PEFT folder; its greedy tokens."""

import json
from pathlib import Path

from helpers.engines import hf_greedy_ids


def merged_greedy_ids(base, adapter, prompts_token_ids, max_tokens):
    return hf_greedy_ids(merged_model(base, adapter), prompts_token_ids, max_tokens)


def merged_model(base, adapter):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    if adapter is not None:
        config = json.loads((Path(adapter) / "adapter_config.json").read_text())
        scale = config["lora_alpha"] / config["r"]
        tensors = load_file(str(Path(adapter) / "adapter_model.safetensors"))
        modules = dict(model.named_modules())
        with torch.no_grad():
            for key, a in tensors.items():
                if key.endswith(".lora_A.weight"):
                    name = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
                    modules[name].weight += scale * tensors[key.replace("lora_A", "lora_B")] @ a
    return model.eval()
