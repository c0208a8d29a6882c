"""The plugin's own options: `--additional-config '{"npu_graph": {...}}'`, validated."""

import dataclasses
import os
import tempfile
import typing
from dataclasses import dataclass, field
from typing import Any

CONFIG_KEY = "npu_graph"

# Decoder-only architectures whose layers our attention backend, fusion passes and MoE
# ops (moe.py) are written and tested for.
MOE_ARCHITECTURES = ("Qwen3MoeForCausalLM", "MixtralForCausalLM", "Qwen2MoeForCausalLM")
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM") + (
    MOE_ARCHITECTURES
)


KERNEL_CHOICES = ("auto", "native", "reference", "triton")
JSON_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


class PluginConfigError(ValueError):
    """A setting this plugin can't serve; the one-line message names the fix."""


def option(name: str | None = None) -> str:
    """How the user writes one of our options: additional_config["npu_graph"]["name"]."""
    return f'additional_config["{CONFIG_KEY}"]' + (f'["{name}"]' if name else "")


def setting_error(setting: str, requirement: str, got: Any, fix: str = "") -> PluginConfigError:
    """The one message format for a bad setting: what must hold, what was given, the fix."""
    return PluginConfigError(f"{setting} must be {requirement}, got {got!r}" + (f"; {fix}." if fix else "."))


@dataclass(frozen=True)
class NPUGraphConfig:
    # KV-cache cap on the host target when --kv-cache-memory-bytes is not given:
    # host RAM is shared with everything else on the machine.
    host_kv_cache_gib: float = 1.0
    # Compute threads per rank on the host target (0 = auto: every CPU this process may
    # run on, shared among the ranks).
    host_threads: int = 0
    # Folder to write the decoder graph before and after our passes ("" = off); it must
    # be creatable and writable (checked at start-up, see check_dump_dir).
    dump_graph_dir: str = ""
    # Attention kernels: "auto" (NPU: triton, host: native), "native" (host: vLLM's CPU
    # build's attention and packed GEMMs), "reference", "triton" (on the host target the
    # Triton kernels run in the CPU interpreter: slow, for parity).
    kernels: str = "auto"
    # Most padded sizes to capture graphs for, >= 1 when given (None = the target's
    # default; NPU: 16, since every ACL graph holds stream resources and too many fail
    # with error 207008).
    max_graph_sizes: int | None = None
    # Per-pass switches {"<pass name>": bool}; unset passes use the target's default.
    passes: dict = field(default_factory=dict)

    @classmethod
    def from_additional_config(cls, additional_config: Any) -> "NPUGraphConfig":
        raw = (additional_config or {}).get(CONFIG_KEY, {}) if isinstance(additional_config, dict) else {}
        if not isinstance(raw, dict):
            raise setting_error(
                option(), "a JSON object of options", raw, f'e.g. {{"{CONFIG_KEY}": {{"kernels": "reference"}}}}'
            )
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise PluginConfigError(
                f"Unknown option(s) {', '.join(map(repr, unknown))} in {option()}; "
                f"valid options: {', '.join(sorted(fields))}."
            )
        values = {}
        for name, value in raw.items():
            if name == "passes":
                values[name] = _validate_passes(value)
                continue
            expected = _value_type(fields[name])
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
                raise setting_error(option(name), JSON_TYPE_NAMES[expected], value)
            values[name] = value
        config = cls(**values)
        if config.kernels not in KERNEL_CHOICES:
            raise setting_error(option("kernels"), f"one of {', '.join(KERNEL_CHOICES)}", config.kernels)
        if config.max_graph_sizes is not None and config.max_graph_sizes < 1:
            raise setting_error(
                option("max_graph_sizes"),
                ">= 1",
                config.max_graph_sizes,
                "leave it out for the target's default, or turn graphs off with --enforce-eager",
            )
        if config.host_threads < 0:
            raise setting_error(option("host_threads"), ">= 0 (0 = every usable CPU)", config.host_threads)
        if config.host_kv_cache_gib <= 0:
            raise setting_error(option("host_kv_cache_gib"), "> 0", config.host_kv_cache_gib)
        return config


def _value_type(f: dataclasses.Field) -> type:
    """The option's JSON value type: the annotation, less `None` (None = leave it out)."""
    args = [a for a in typing.get_args(f.type) if a is not type(None)]
    return args[0] if args else f.type


def _validate_passes(value: Any) -> dict:
    from vllm_npu_graph.passes import PASS_NAMES

    where = option("passes")
    if not isinstance(value, dict):
        raise setting_error(where, "a JSON object of pass name -> true/false", value, 'e.g. {"swiglu": false}')
    unknown = sorted(set(value) - set(PASS_NAMES))
    if unknown:
        raise PluginConfigError(
            f"Unknown pass(es) {', '.join(map(repr, unknown))} in {where}; passes: {', '.join(PASS_NAMES)}."
        )
    bad = next((k for k, v in value.items() if not isinstance(v, bool)), None)
    if bad is not None:
        raise setting_error(f"{where}[{bad!r}]", "true or false", value[bad])
    return dict(value)


def check_dump_dir(path: str) -> None:
    """Refuse a dump folder that can't be written now, not when the graph is dumped
    (after the weights have loaded). Creates the folder, as the dump would."""
    if not path:
        return
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        why = "it is a file" if os.path.isfile(path) else (exc.strerror or str(exc)).lower()
        raise setting_error(
            option("dump_graph_dir"),
            "a folder we can create and write",
            path,
            f"{why}: pick a writable folder or leave the option out",
        ) from None


def plugin_config(vllm_config) -> NPUGraphConfig:
    return NPUGraphConfig.from_additional_config(vllm_config.additional_config)
