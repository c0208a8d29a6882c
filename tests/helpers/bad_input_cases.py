"""Every bad-input case tried, and its accepted neighbours: one list that both
tests/test_bad_input.py runs and tests/bad_input_table.md is generated from.

Each case runs `EngineArgs(model=<tiny Llama>, dtype="float32", max_model_len=256,
**kwargs).create_engine_config()` on the host target: what `vllm serve` and `LLM(...)`
do before the engine starts, so a rejection here comes before any weights load. Cases
that need another environment at import (the target choice) run it in a fresh Python.

Regenerate the table: `PYTHONPATH=tests VLLM_NPU_GRAPH_TARGET=host python -m helpers.bad_input_cases`.
"""

import contextlib
import functools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

TABLE = Path(__file__).resolve().parents[1] / "bad_input_table.md"
WRITABLE_DUMP_DIR = "/tmp/vllm-npu-graph-dump-check"
BASE = dict(dtype="float32", max_model_len=256)


@dataclass(frozen=True)
class Case:
    id: str
    kwargs: dict = field(default_factory=dict)  # EngineArgs overrides
    expect: str = ""  # regex searched in the outcome: the error message, or "accepted: ..."
    env: dict = field(default_factory=dict)
    model: str = "llama"  # "llama" (supported), "qwen3_moe", "gpt2" (not), or a QUANT_VARIANTS name
    fresh_process: bool = False  # the environment matters at plugin registration
    by_vllm: bool = False  # refused by vLLM's own check, before our platform sees it
    note: str = ""

    @property
    def rejected(self) -> bool:
        return not self.expect.lstrip("^").startswith("accepted")


def npu_graph(**options) -> dict:
    return dict(additional_config={"npu_graph": options})


def cc(**settings) -> dict:
    return dict(compilation_config=settings)


OPT = r'additional_config\["npu_graph"\]'
SIZES = r'compilation_config\["cudagraph_capture_sizes"\]'
MODE = r'compilation_config\["cudagraph_mode"\] must be FULL_DECODE_ONLY or NONE, got '
NO_GRAPHS = r'to run without graphs set "cudagraph_mode": "NONE" or --enforce-eager\.'
DUMP = OPT + r'\["dump_graph_dir"\] must be a folder we can create and write, got '
DEFAULT_SIZES = "[1, 2, 3, 5, 7, 10, 13, 17, 22, 29, 37, 48, 62, 79, 101, 128]"
VLLM_CONVERTS = "vLLM's pydantic config converts it losslessly before any platform hook sees it"

CASES = [
    # --- our options: --additional-config '{"npu_graph": {...}}'
    Case(
        "option-unknown",
        npu_graph(capture_everything=True),
        r"Unknown option\(s\) 'capture_everything' in " + OPT + r"; valid options: dump_graph_dir, host_kv_cache_gib",
    ),
    Case(
        "options-not-an-object",
        dict(additional_config={"npu_graph": 3}),
        OPT + r' must be a JSON object of options, got 3; e\.g\. \{"npu_graph": \{"kernels": "reference"\}\}\.',
    ),
    Case(
        "additional-config-not-an-object",
        dict(additional_config=[1]),
        r"additional_config\.dict\[any,any\]: Input should be a valid dictionary",
        by_vllm=True,
    ),
    Case(
        "option-bool-for-int",
        npu_graph(max_graph_sizes=True),
        OPT + r'\["max_graph_sizes"\] must be an integer, got True\.',
    ),
    Case(
        "option-string-for-int",
        npu_graph(host_threads="2"),
        OPT + r"\[\"host_threads\"\] must be an integer, got '2'\.",
    ),
    Case(
        "option-string-for-float",
        npu_graph(host_kv_cache_gib="1"),
        OPT + r"\[\"host_kv_cache_gib\"\] must be a number, got '1'\.",
    ),
    Case(
        "option-bool-for-float",
        npu_graph(host_kv_cache_gib=False),
        OPT + r'\["host_kv_cache_gib"\] must be a number, got False\.',
    ),
    Case("option-int-for-string", npu_graph(kernels=1), OPT + r'\["kernels"\] must be a string, got 1\.'),
    Case("option-null", npu_graph(dump_graph_dir=None), OPT + r'\["dump_graph_dir"\] must be a string, got None\.'),
    Case(
        "passes-not-an-object",
        npu_graph(passes=[]),
        OPT + r'\["passes"\] must be a JSON object of pass name -> true/false, got \[\]; e\.g\. \{"swiglu": false\}\.',
    ),
    Case(
        "pass-switch-string",
        npu_graph(passes={"swiglu": "yes"}),
        OPT + r"\[\"passes\"\]\['swiglu'\] must be true or false, got 'yes'\.",
    ),
    Case(
        "pass-switch-int",
        npu_graph(passes={"swiglu": 1}),
        OPT + r"\[\"passes\"\]\['swiglu'\] must be true or false, got 1\.",
    ),
    Case(
        "pass-unknown",
        npu_graph(passes={"fuse_everything": True}),
        r"Unknown pass\(es\) 'fuse_everything' in " + OPT + r'\["passes"\]; passes: noop, rms_norm, .*linear\.',
    ),
    Case(
        "kernels-unknown",
        npu_graph(kernels="cuda"),
        OPT + r"\[\"kernels\"\] must be one of auto, native, reference, triton, got 'cuda'\.",
    ),
    Case(
        "kernels-native-with-rope-kv-write",
        npu_graph(kernels="native", passes={"rope_kv_write": True}),
        r'the rope_kv_write pass writes the KV cache in our kernels\' format.*switch it off \("passes": \{"rope_kv_write": false\}\)',
    ),
    Case(
        "max-graph-sizes-zero",
        npu_graph(max_graph_sizes=0),
        OPT
        + r"\[\"max_graph_sizes\"\] must be >= 1, got 0; leave it out for the target's default, or turn graphs off with --enforce-eager\.",
    ),
    Case(
        "max-graph-sizes-negative", npu_graph(max_graph_sizes=-1), OPT + r'\["max_graph_sizes"\] must be >= 1, got -1;'
    ),
    Case(
        "host-threads-negative",
        npu_graph(host_threads=-1),
        OPT + r"\[\"host_threads\"\] must be >= 0 \(0 = every usable CPU\), got -1\.",
    ),
    Case(
        "host-kv-cache-zero", npu_graph(host_kv_cache_gib=0), OPT + r'\["host_kv_cache_gib"\] must be > 0, got 0\.0\.'
    ),
    Case(
        "host-kv-cache-negative",
        npu_graph(host_kv_cache_gib=-1),
        OPT + r'\["host_kv_cache_gib"\] must be > 0, got -1\.0\.',
    ),
    Case(
        "dump-dir-is-a-file",
        npu_graph(dump_graph_dir="/etc/passwd"),
        DUMP + r"'/etc/passwd'; it is a file: pick a writable folder or leave the option out\.",
    ),
    Case(
        "dump-dir-under-a-file",
        npu_graph(dump_graph_dir="/etc/passwd/graphs"),
        DUMP + r"'/etc/passwd/graphs'; not a directory: pick a writable folder",
    ),
    Case(
        "dump-dir-cannot-be-created",
        npu_graph(dump_graph_dir="/proc/npu-graph-dump"),
        DUMP + r"'/proc/npu-graph-dump'; no such file or directory: pick a writable folder",
    ),
    # --- capture sizes: --compilation-config '{"cudagraph_capture_sizes": [...]}'
    Case(
        "sizes-negative", cc(cudagraph_capture_sizes=[-1, 2]), SIZES + r" must be sizes >= 1, got \[-1, 2\]; drop -1\."
    ),
    Case(
        "sizes-zero", cc(cudagraph_capture_sizes=[0, 1, 2]), SIZES + r" must be sizes >= 1, got \[0, 1, 2\]; drop 0\."
    ),
    Case(
        "sizes-fraction",
        cc(cudagraph_capture_sizes=[1.5, 2]),
        r"cudagraph_capture_sizes\.0: Input should be a valid integer, got a number with a fractional part",
        by_vllm=True,
    ),
    Case(
        "sizes-word",
        cc(cudagraph_capture_sizes=["four"]),
        r"cudagraph_capture_sizes\.0: Input should be a valid integer, unable to parse string as an integer",
        by_vllm=True,
    ),
    Case(
        "sizes-not-a-list",
        cc(cudagraph_capture_sizes=8),
        r"cudagraph_capture_sizes: Input should be a valid list",
        by_vllm=True,
    ),
    Case(
        "sizes-repeated",
        cc(cudagraph_capture_sizes=[1, 2, 2, 4]),
        SIZES + r" must be distinct sizes, got \[1, 2, 2, 4\]; list 2 once\.",
    ),
    Case(
        "sizes-above-max-num-batched-tokens",
        cc(cudagraph_capture_sizes=[1, 4096]),
        SIZES
        + r" must be sizes <= max_num_batched_tokens \(2048\), got \[1, 4096\]; drop 4096 or raise --max-num-batched-tokens\.",
    ),
    Case("sizes-empty", cc(cudagraph_capture_sizes=[]), SIZES + r" must be at least one size, got \[\]; " + NO_GRAPHS),
    Case(
        "max-capture-size-zero",
        cc(max_cudagraph_capture_size=0),
        r'compilation_config\["max_cudagraph_capture_size"\] must be >= 1, got 0; ' + NO_GRAPHS,
    ),
    Case(
        "max-capture-size-negative",
        cc(max_cudagraph_capture_size=-8),
        r'compilation_config\["max_cudagraph_capture_size"\] must be >= 1, got -8;',
    ),
    Case(
        "max-capture-size-not-the-largest-size",
        cc(cudagraph_capture_sizes=[1, 16], max_cudagraph_capture_size=8),
        r"customized max_cudagraph_capture_size\(=8\) should be consistent with the max value of cudagraph_capture_sizes\(=16\)",
        by_vllm=True,
    ),
    # --- cudagraph_mode our attention backend can't serve
    Case(
        "mode-full",
        cc(cudagraph_mode="FULL"),
        MODE
        + r"'FULL'; FULL would capture prefill and mixed batches too, .*; leave it unset \(decode graphs\) or set FULL_DECODE_ONLY\.",
    ),
    Case(
        "mode-piecewise",
        cc(cudagraph_mode="PIECEWISE"),
        MODE + r"'PIECEWISE'; piecewise graphs need the decoder split at attention, and we compile it whole;",
    ),
    Case(
        "mode-full-and-piecewise",
        cc(cudagraph_mode="FULL_AND_PIECEWISE"),
        MODE + r"'FULL_AND_PIECEWISE'; piecewise graphs",
    ),
    Case("mode-full-at-o0", dict(optimization_level=0, **cc(cudagraph_mode="FULL")), MODE + r"'FULL';"),
    Case(
        "mode-misspelt",
        cc(cudagraph_mode="SOMETIMES"),
        r"^'SOMETIMES'$",
        by_vllm=True,
        note="not clear: vLLM's KeyError from parsing the mode, raised before any platform hook",
    ),
    Case(
        "mode-number",
        cc(cudagraph_mode=7),
        r"cudagraph_mode: Input should be 0, 1, 2, \(2, 0\) or \(2, 1\)",
        by_vllm=True,
    ),
    # --- target and environment
    Case(
        "target-unknown",
        env={"VLLM_NPU_GRAPH_TARGET": "bogus"},
        fresh_process=True,
        expect=r"^VLLM_NPU_GRAPH_TARGET='bogus' is not valid: expected one of auto, npu, host\.$",
    ),
    Case(
        "target-npu-without-npu",
        env={"VLLM_NPU_GRAPH_TARGET": "npu"},
        fresh_process=True,
        expect=r"^VLLM_NPU_GRAPH_TARGET=npu but no Ascend NPU is usable here: .*set VLLM_NPU_GRAPH_TARGET=host",
    ),
    Case(
        "env-misspelt-strict",
        dict(fail_on_environ_validation=True),
        env={"VLLM_NPU_GRAPH_TARGTE": "host"},
        expect=r"^Unknown vllm-npu-graph environment variable VLLM_NPU_GRAPH_TARGTE; valid ones: VLLM_NPU_GRAPH_TARGET, ",
    ),
    Case(
        "host-isa-unknown",
        env={"VLLM_NPU_GRAPH_HOST_ISA": "sse4"},
        fresh_process=True,
        expect=r"^VLLM_NPU_GRAPH_HOST_ISA='sse4' is not valid: expected one of auto, avx2, avx512, avx512_bf16\.$",
        note="a tier the CPU lacks, or a CPU without AVX2 + FMA, is refused the same way (tests/test_host_isa.py)",
    ),
    # --- model and vLLM features
    Case(
        "architecture-unsupported",
        model="gpt2",
        expect=r"vllm-npu-graph does not support the architecture 'GPT2LMHeadModel'; supported: LlamaForCausalLM, .*"
        r"Serve this model with another platform \(unset VLLM_NPU_GRAPH_TARGET\)\.",
    ),
    Case(
        "dtype-unknown",
        dict(dtype="float64"),
        r"dtype\.literal\[.*\]: Input should be 'auto', 'half', 'float16', 'bfloat16', 'float' or 'float32'",
        by_vllm=True,
    ),
    Case(
        "kv-cache-dtype-fp8",
        dict(kv_cache_dtype="fp8"),
        r"^Value error, kv_cache_dtype must be auto \(the model's dtype\) on vllm-npu-graph, got 'fp8'; drop --kv-cache-dtype\.$",
    ),
    Case(
        "lora-moe",
        dict(enable_lora=True),
        r"^Value error, vllm-npu-graph serves LoRA adapters on float dense generative models on one worker; not on a mixture-of-experts model \(drop --enable-lora or that option\)\.$",
        model="qwen3_moe",
    ),
    Case(
        "lora-quantized",
        dict(enable_lora=True),
        r"^Value error, vllm-npu-graph serves LoRA adapters on float dense generative models on one worker; not on a quantized \(compressed-tensors\) checkpoint",
        model="w8a8",
    ),
    Case(
        "lora-speculative",
        dict(
            enable_lora=True,
            speculative_config={"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_max": 2},
        ),
        r"^Value error, vllm-npu-graph serves LoRA adapters on float dense generative models on one worker; not with speculative decoding",
    ),
    Case(
        "lora-fully-sharded",
        dict(enable_lora=True, fully_sharded_loras=True),
        r"^Value error, vllm-npu-graph serves LoRA adapters on float dense generative models on one worker; not with --fully-sharded-loras",
    ),
    Case(
        "speculative-eagle",
        dict(speculative_config={"method": "eagle", "model": "{llama}", "num_speculative_tokens": 2}),
        r"^Value error, speculative decoding method 'eagle' is not supported by vllm-npu-graph; supported: ngram, "
        r"draft_model \(--speculative-config .*\)\.$",
    ),
    Case(
        "speculative-ngram-gpu",
        dict(speculative_config={"method": "ngram_gpu", "num_speculative_tokens": 3, "prompt_lookup_max": 3}),
        r"^Value error, speculative decoding method 'ngram_gpu' is not supported by vllm-npu-graph; supported: ngram,",
    ),
    Case(
        "quantization-fp8",
        dict(quantization="fp8", dtype="bfloat16"),
        r"^Value error, vllm-npu-graph serves compressed-tensors W8A8 int8 .*; this checkpoint has quantization "
        r"method 'fp8'\.$",
    ),
    Case(
        "w8a8-static-activations",
        model="w8a8-static",
        expect=r"^Value error, vllm-npu-graph serves compressed-tensors W8A8 int8 .*; this checkpoint has static "
        r"activation scales \(per tensor\) \(group group_0\)\.$",
    ),
    Case(
        "w8a16-weight-only",
        model="w8a16",
        expect=r"; this checkpoint has weight-only quantization \(W8A16\) \(group group_0\)\.$",
    ),
    Case("w4a16", model="w4a16", expect=r"; this checkpoint has 4-bit int weights \(group group_0\)\.$"),
    Case(
        "fp8-compressed-tensors", model="fp8", expect=r"; this checkpoint has 8-bit float weights \(group group_0\)\.$"
    ),
    Case(
        "w8a8-asymmetric-activations",
        model="w8a8-asym",
        expect=r"; this checkpoint has asymmetric activations \(zero points\) \(group group_0\)\.$",
    ),
    # --- accepted neighbours
    Case(
        "ok-w8a8",
        model="w8a8",
        expect=r"^accepted: cudagraph_mode FULL_DECODE_ONLY; capture sizes " + re.escape(DEFAULT_SIZES) + "$",
        note="compressed-tensors W8A8 int8, per-token dynamic activations",
    ),
    Case(
        "ok-defaults",
        expect=r"^accepted: cudagraph_mode FULL_DECODE_ONLY; capture sizes " + re.escape(DEFAULT_SIZES) + "$",
        note="vLLM's default mode (FULL_AND_PIECEWISE) maps to FULL_DECODE_ONLY, logged",
    ),
    Case(
        "ok-sizes",
        cc(cudagraph_capture_sizes=[1, 2, 4]),
        r"^accepted: cudagraph_mode FULL_DECODE_ONLY; capture sizes \[1, 2, 4\]$",
    ),
    Case("ok-sizes-unsorted", cc(cudagraph_capture_sizes=[4, 1, 2]), r"^accepted: .*; capture sizes \[1, 2, 4\]$"),
    Case(
        "ok-sizes-integral-float",
        cc(cudagraph_capture_sizes=[4.0]),
        r"^accepted: .*; capture sizes \[4\]$",
        note=VLLM_CONVERTS,
    ),
    Case(
        "ok-sizes-numeric-string",
        cc(cudagraph_capture_sizes=["4"]),
        r"^accepted: .*; capture sizes \[4\]$",
        note=VLLM_CONVERTS,
    ),
    Case(
        "ok-sizes-at-max-num-batched-tokens",
        cc(cudagraph_capture_sizes=[1, 2048]),
        r"^accepted: .*; capture sizes \[1\]$",
        note="sizes above max_num_seqs (128) serve no decode batch: dropped, logged",
    ),
    Case("ok-max-capture-size", cc(max_cudagraph_capture_size=8), r"^accepted: .*; capture sizes \[1, 2, 4, 8\]$"),
    Case(
        "ok-mode-full-decode-only",
        cc(cudagraph_mode="FULL_DECODE_ONLY"),
        r"^accepted: cudagraph_mode FULL_DECODE_ONLY;",
    ),
    Case(
        "ok-mode-none",
        cc(cudagraph_mode="NONE", cudagraph_capture_sizes=[1, 2]),
        r"^accepted: cudagraph_mode NONE; capture sizes \[\]$",
    ),
    Case(
        "ok-mode-default-at-o1",
        dict(optimization_level=1),
        r"^accepted: cudagraph_mode FULL_DECODE_ONLY;",
        note="vLLM's -O1 default (PIECEWISE) maps to FULL_DECODE_ONLY, logged",
    ),
    Case(
        "ok-eager-with-full",
        dict(enforce_eager=True, **cc(cudagraph_mode="FULL")),
        r"^accepted: cudagraph_mode NONE; capture sizes \[\]$",
        note="--enforce-eager turns graphs off (vLLM, logged) before the mode is checked",
    ),
    Case(
        "ok-eager-ignores-sizes",
        dict(enforce_eager=True, **cc(cudagraph_capture_sizes=[0])),
        r"^accepted: cudagraph_mode NONE; capture sizes \[\]$",
        note="no graphs: vLLM ignores and clears the sizes",
    ),
    Case(
        "ok-speculative-ngram",
        dict(speculative_config={"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3}),
        r"^accepted: cudagraph_mode FULL_DECODE_ONLY; capture sizes \[4, 8, 12, 20, .*, 512\]$",
        note="before: the engine core died at start-up (torch.cuda.Stream requires CUDA support); "
        "sizes are whole requests of 1 + 3 tokens",
    ),
    Case(
        "ok-lora",
        dict(enable_lora=True, max_loras=2),
        r"^accepted: cudagraph_mode FULL_DECODE_ONLY; capture sizes \[1, 2, 3, 5, .*, 128\]$",
        note="before: refused (not built); graphs captured with and without active adapters",
    ),
    Case(
        "ok-pooling-embed",
        dict(runner="pooling", convert="embed"),
        r"^accepted: cudagraph_mode NONE; capture sizes \[\]$",
        note="before: the engine core died (StageMissingLayer ... should not be called); one prefill per "
        "request, no decode graphs",
    ),
    Case("ok-max-graph-sizes-1", npu_graph(max_graph_sizes=1), r"^accepted: .*; capture sizes \[128\]$"),
    Case("ok-max-graph-sizes-2", npu_graph(max_graph_sizes=2), r"^accepted: .*; capture sizes \[1, 128\]$"),
    Case(
        "ok-options",
        npu_graph(host_kv_cache_gib=2, host_threads=0, kernels="reference", passes={"swiglu": False}),
        r"^accepted: ",
    ),
    Case("ok-dump-dir", npu_graph(dump_graph_dir=WRITABLE_DUMP_DIR), r"^accepted: "),
    Case("ok-target-upper-case", env={"VLLM_NPU_GRAPH_TARGET": "HOST"}, fresh_process=True, expect=r"^accepted: "),
    Case("ok-host-isa-avx2", env={"VLLM_NPU_GRAPH_HOST_ISA": "avx2"}, fresh_process=True, expect=r"^accepted: "),
]
BY_ID = {case.id: case for case in CASES}


def _group(config: dict) -> dict:
    return config["config_groups"]["group_0"]


def _weight_only(bits: int, fmt: str):
    def edit(config):
        config["format"] = fmt
        _group(config).pop("input_activations")
        _group(config)["weights"]["num_bits"] = bits

    return edit


# Quantized checkpoints of the tiny Llama: our W8A8 build with its quantization config
# edited as those schemes' checkpoints have it (only the config is read before weights load).
QUANT_VARIANTS = {
    "w8a8": None,
    "w8a8-static": lambda c: _group(c)["input_activations"].update(dynamic=False, strategy="tensor"),
    "w8a16": _weight_only(8, "pack-quantized"),
    "w4a16": _weight_only(4, "pack-quantized"),
    "fp8": lambda c: [_group(c)[part].update(type="float") for part in ("weights", "input_activations")],
    "w8a8-asym": lambda c: _group(c)["input_activations"].update(symmetric=False),
}


def quantized_variant(llama: Path, name: str) -> Path:
    from vllm_npu_graph.models import cache_dir
    from vllm_npu_graph.quantize import build_w8a8

    w8a8 = build_w8a8(llama, cache_dir() / "models" / "tiny-llama-seed0-w8a8")
    edit = QUANT_VARIANTS[name]
    if edit is None:
        return w8a8
    out = cache_dir() / "models" / f"tiny-llama-seed0-{name}"
    if not (out / "config.json").exists():
        out.mkdir(parents=True, exist_ok=True)
        for f in w8a8.iterdir():
            if f.name != "config.json" and not (out / f.name).exists():
                (out / f.name).symlink_to(f)
        config = json.loads((w8a8 / "config.json").read_text())
        edit(config["quantization_config"])
        tmp = out / f".config.{os.getpid()}.json"
        tmp.write_text(json.dumps(config, indent=2))
        tmp.replace(out / "config.json")
    return out


def model_path(name: str) -> Path:
    from vllm_npu_graph.models import build_default_model, build_tiny_model, cache_dir

    tokenizer = build_default_model()
    llama = build_tiny_model("llama", cache_dir() / "models" / "tiny-llama-seed0", seed=0, tokenizer_from=tokenizer)
    if name == "llama":
        return llama
    if name in QUANT_VARIANTS:
        return quantized_variant(llama, name)
    if name == "qwen3_moe":
        return build_tiny_model(name, cache_dir() / "models" / "tiny-qwen3_moe-seed0", seed=0, tokenizer_from=tokenizer)
    out = cache_dir() / "models" / "tiny-gpt2-unsupported"
    if not (out / "config.json").exists():
        from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

        GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=49152)).save_pretrained(out)
        AutoTokenizer.from_pretrained(str(tokenizer)).save_pretrained(out)
    return out


def accepted(config) -> str:
    compilation = config.compilation_config
    return f"accepted: cudagraph_mode {compilation.cudagraph_mode.name}; capture sizes {compilation.cudagraph_capture_sizes}"


def describe(exc: BaseException) -> tuple[str, str]:
    """(the exception the check raised, the message the user reads). vLLM's pydantic
    configs wrap a check's error: for those, each error's location and message."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return qualname(type(exc)), str(exc)
    errors = exc.errors()
    origin = errors[0].get("ctx", {}).get("error")
    raised = qualname(type(origin)) if isinstance(origin, BaseException) else qualname(type(exc))
    lines = [(f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"] for e in errors]
    return raised, " / ".join(lines)


def qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__name__}" if cls.__module__ not in ("builtins",) else cls.__name__


@contextlib.contextmanager
def environment(env: dict):
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


FRESH_PROCESS = """
import json, sys
from vllm.engine.arg_utils import EngineArgs
config = EngineArgs(**json.loads(sys.argv[1])).create_engine_config()
print("ACCEPTED", json.dumps([config.compilation_config.cudagraph_mode.name, config.compilation_config.cudagraph_capture_sizes]))
"""


@functools.cache
def outcome(case_id: str) -> tuple[str, str]:
    """(exception raised, or "" when accepted; the message or the accepted summary)."""
    case = BY_ID[case_id]
    overrides = json.loads(json.dumps(case.kwargs).replace('"{llama}"', json.dumps(str(model_path("llama")))))
    kwargs = {"model": str(model_path(case.model)), **BASE, **overrides}
    if case.fresh_process:
        return fresh_process_outcome(kwargs, case.env)
    from vllm.engine.arg_utils import EngineArgs

    with environment(case.env):
        try:
            return "", accepted(EngineArgs(**kwargs).create_engine_config())
        except Exception as exc:  # noqa: BLE001 - what is raised is what we record
            return describe(exc)
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(WRITABLE_DUMP_DIR)  # the accepted dump folder, created empty by the check


def fresh_process_outcome(kwargs: dict, env: dict) -> tuple[str, str]:
    proc = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, json.dumps(kwargs)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode == 0:
        mode, sizes = json.loads(proc.stdout.strip().splitlines()[-1].removeprefix("ACCEPTED "))
        return "", f"accepted: cudagraph_mode {mode}; capture sizes {sizes}"
    last = proc.stderr.strip().splitlines()[-1]  # the traceback's last line: "module.Error: message"
    raised, _, message = last.partition(": ")
    return raised, message


def cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_table() -> str:
    rows = [
        "# Bad input: every case tried, and what the user reads",
        "",
        "Generated by `PYTHONPATH=tests VLLM_NPU_GRAPH_TARGET=host python -m helpers.bad_input_cases` from the",
        "case list in `tests/helpers/bad_input_cases.py`; `tests/test_bad_input.py` runs every case and fails",
        "when this file differs from what the cases produce now. Each case runs",
        '`EngineArgs(model=<tiny Llama>, dtype="float32", max_model_len=256, **input).create_engine_config()`',
        "on the host target, which `vllm serve` and `LLM(...)` do before the engine starts, so every",
        "rejection comes before any weights load; `env` cases run it in a fresh Python process (the",
        "target is chosen at plugin registration). *Message*: the exception's text; vLLM's pydantic",
        "configs wrap a check's error in a ValidationError, whose lines under `N validation error(s)",
        "for ...` are shown as `location: message` (several joined by ` / `). *Raised*: the check's",
        "own exception (ours: `vllm_npu_graph.*`). Where vLLM's own check refuses first and its",
        "message is clear, it is kept.",
        "",
        "| case | input | refused by | raised | message | note |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for case in CASES:
        raised, message = outcome(case.id)
        given = (
            ", ".join(
                [f"{k}={json.dumps(v)}" for k, v in case.kwargs.items()]
                + [f"env {k}={v}" for k, v in case.env.items()]
                + ([f"model={case.model}"] if case.model != "llama" else [])
            )
            or "(defaults)"
        )
        by = ("vLLM" if case.by_vllm else "plugin") if raised else "(accepted)"
        rows.append(
            f"| {case.id} | `{cell(given)}` | {by} | {cell(raised) or '-'} | {cell(message)} | {cell(case.note)} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("VLLM_NPU_GRAPH_TARGET", "host")
    TABLE.write_text(render_table())
    print(f"wrote {TABLE}")
