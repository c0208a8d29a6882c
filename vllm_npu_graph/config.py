"""The plugin's own options: `--additional-config '{"npu_graph": {...}}'`, validated."""

import dataclasses
from dataclasses import dataclass, field
from typing import Any

CONFIG_KEY = "npu_graph"

# Decoder-only architectures whose layers our attention backend (and later our fusion
# passes) are written and tested for.
SUPPORTED_ARCHITECTURES = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
)


KERNEL_CHOICES = ("auto", "native", "reference", "triton")


class PluginConfigError(ValueError):
    """An invalid `additional_config["npu_graph"]`; the message names the fix."""


@dataclass(frozen=True)
class NPUGraphConfig:
    # KV-cache cap on the host target when --kv-cache-memory-bytes is not given:
    # host RAM is shared with everything else on the machine.
    host_kv_cache_gib: float = 1.0
    # Compute threads per rank on the host target (0 = auto: every CPU this process may
    # run on, shared among the ranks).
    host_threads: int = 0
    # Folder to write the decoder graph before and after our passes ("" = off).
    dump_graph_dir: str = ""
    # Attention kernels: "auto" (NPU: triton, host: native), "native" (host: vLLM's CPU
    # build's attention and packed GEMMs), "reference", "triton" (on the host target the
    # Triton kernels run in the CPU interpreter: slow, for parity).
    kernels: str = "auto"
    # Most padded sizes to capture graphs for (0 = the target's default; NPU: 16, since
    # every ACL graph holds stream resources and too many fail with error 207008).
    max_graph_sizes: int = 0
    # Per-pass switches {"<pass name>": bool}; unset passes use the target's default.
    passes: dict = field(default_factory=dict)

    @classmethod
    def from_additional_config(cls, additional_config: Any) -> "NPUGraphConfig":
        raw = (additional_config or {}).get(CONFIG_KEY, {}) if isinstance(additional_config, dict) else {}
        if not isinstance(raw, dict):
            raise PluginConfigError(
                f'additional_config["{CONFIG_KEY}"] must be a JSON object, got {type(raw).__name__}.'
            )
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise PluginConfigError(
                f'Unknown option(s) {", ".join(map(repr, unknown))} in additional_config["{CONFIG_KEY}"]; '
                f"valid options: {', '.join(sorted(fields))}."
            )
        values = {}
        for name, value in raw.items():
            if name == "passes":
                values[name] = _validate_passes(value)
                continue
            expected = type(fields[name].default)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
                raise PluginConfigError(
                    f'additional_config["{CONFIG_KEY}"]["{name}"] must be {expected.__name__}, '
                    f"got {value!r}."
                )
            values[name] = value
        config = cls(**values)
        if config.kernels not in KERNEL_CHOICES:
            raise PluginConfigError(
                f'additional_config["{CONFIG_KEY}"]["kernels"] must be one of {", ".join(KERNEL_CHOICES)}, '
                f"got {config.kernels!r}."
            )
        if config.max_graph_sizes < 0:
            raise PluginConfigError(
                f'additional_config["{CONFIG_KEY}"]["max_graph_sizes"] must be >= 0, got {config.max_graph_sizes}.'
            )
        if config.host_threads < 0:
            raise PluginConfigError(
                f'additional_config["{CONFIG_KEY}"]["host_threads"] must be >= 0, got {config.host_threads}.'
            )
        if config.host_kv_cache_gib <= 0:
            raise PluginConfigError(
                f'additional_config["{CONFIG_KEY}"]["host_kv_cache_gib"] must be > 0, '
                f"got {config.host_kv_cache_gib}."
            )
        return config


def _validate_passes(value: Any) -> dict:
    from vllm_npu_graph.passes import PASS_NAMES

    where = f'additional_config["{CONFIG_KEY}"]["passes"]'
    if not isinstance(value, dict):
        raise PluginConfigError(f"{where} must be a JSON object of pass name -> true/false.")
    unknown = sorted(set(value) - set(PASS_NAMES))
    if unknown:
        raise PluginConfigError(f"Unknown pass(es) {', '.join(map(repr, unknown))} in {where}; passes: {', '.join(PASS_NAMES)}.")
    bad = [k for k, v in value.items() if not isinstance(v, bool)]
    if bad:
        raise PluginConfigError(f"{where}[{bad[0]!r}] must be true or false.")
    return dict(value)


def plugin_config(vllm_config) -> NPUGraphConfig:
    return NPUGraphConfig.from_additional_config(vllm_config.additional_config)
