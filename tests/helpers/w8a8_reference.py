"""A pure-torch W8A8 forward of a compressed-tensors checkpoint, for checking engines:
Hugging Face's model with each quantized linear replaced by per-token int8 activation
quantization times the checkpoint's int8 weight, scaled (kernels/quant_reference.py).

`noise` nudges every quantized linear's input by that relative amount (seeded): with
1e-7, about one float32 ulp, it measures how far the same W8A8 math moves when float
ops merely run in another order, the floor any engine is held to."""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from vllm_npu_graph.kernels import quant_reference as ref


class W8A8Linear(torch.nn.Module):
    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None, noise: float):
        super().__init__()
        self.noise, self.generator = noise, torch.Generator().manual_seed(0)
        self.w = q.t().contiguous()  # [K, N] int8
        self.scale = scale.reshape(-1).float()
        self.bias = bias

    def forward(self, x):
        if self.noise:
            x = x * (1 + self.noise * torch.randn(x.shape, generator=self.generator))
        rows = x.reshape(-1, x.shape[-1])
        x_q, x_scale = ref.quant_per_token(rows)
        out = ref.int8_linear(x_q, x_scale, self.w, self.scale, self.bias, x.dtype)
        return out.reshape(*x.shape[:-1], -1)


def load(folder, noise: float = 0.0) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("quantization_config")
    hf_config = AutoConfig.for_model(**config)
    model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
    tensors = load_file(folder / "model.safetensors")
    floats = {k: v for k, v in tensors.items() if v.is_floating_point() and not k.endswith("weight_scale")}
    model.load_state_dict(floats, strict=False)
    if hf_config.tie_word_embeddings:
        model.tie_weights()
    for name, module in list(model.named_modules()):
        if f"{name}.weight_scale" in tensors:
            parent, _, child = name.rpartition(".")
            linear = W8A8Linear(tensors[f"{name}.weight"], tensors[f"{name}.weight_scale"], module.bias, noise)
            setattr(model.get_submodule(parent), child, linear)
    return model.eval()


@torch.no_grad()
def logprobs(model, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    """Log-softmax over the vocabulary at each of `tokens`, teacher-forced: [len(tokens), V]."""
    seq = torch.tensor([prompt + tokens])
    logits = model(seq).logits[0, len(prompt) - 1 : len(prompt) - 1 + len(tokens)]
    return torch.log_softmax(logits.float(), dim=-1)


def text_logprobs(model, text: list[int]) -> list[float]:
    """Each text token's logprob after the ones before it."""
    table = logprobs(model, text[:1], text[1:])
    return [float(table[i][t]) for i, t in enumerate(text[1:])]


def noise_floor(folder, reference, text: list[int]) -> tuple[list[float], float, float]:
    """The reference against itself with one-ulp input noise: (its text logprobs, mean and
    max |difference|), the bar for every engine."""
    exact, nudged = text_logprobs(reference, text), text_logprobs(load(folder, noise=1e-7), text)
    diffs = [abs(a - b) for a, b in zip(exact, nudged)]
    print(f"noise floor: mean |diff| {sum(diffs) / len(diffs):.4f}, max {max(diffs):.3f}")
    return exact, sum(diffs) / len(diffs), max(diffs)


def worst_moves(reference, prompts, run: dict) -> tuple[float, float]:
    """An engine's greedy run scored teacher-forced on its own tokens: (the largest gap
    between the reference's best logprob and the chosen token's, the largest difference
    between the engine's logprob and the reference's)."""
    worst_gap, worst_logprob = 0.0, 0.0
    for ids, tokens, engine_logprobs in zip(prompts, run["tokens"], run["logprobs"]):
        ref = logprobs(reference, ids, tokens)
        for step, (token, logprob) in enumerate(zip(tokens, engine_logprobs)):
            worst_gap = max(worst_gap, float(ref[step].max() - ref[step][token]))
            worst_logprob = max(worst_logprob, abs(logprob - float(ref[step][token])))
    return worst_gap, worst_logprob
