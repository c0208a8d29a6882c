"""The plugin's own environment variables, documented in one place.

vLLM checks every `VLLM_*` variable against its own list (and refuses to start on an
unknown one in its strict mode); our platform's `validate_environ` accepts these and
reports a misspelt `VLLM_NPU_GRAPH_*` one with the valid names.
"""

PREFIX = "VLLM_NPU_GRAPH_"
TARGET = "VLLM_NPU_GRAPH_TARGET"
STRICT_GRAPHS = "VLLM_NPU_GRAPH_STRICT_GRAPHS"
FAIL_CAPTURE_SIZES = "VLLM_NPU_GRAPH_FAIL_CAPTURE_SIZES"
FAIL_COMPILE = "VLLM_NPU_GRAPH_FAIL_COMPILE"
FAIL_STEP = "VLLM_NPU_GRAPH_FAIL_STEP"
HOST_VISIBLE_DEVICES = "VLLM_NPU_GRAPH_HOST_VISIBLE_DEVICES"
CACHE = "VLLM_NPU_GRAPH_CACHE"
COMPILE_CACHE_DIR = "VLLM_NPU_GRAPH_COMPILE_CACHE_DIR"
DEMO_PORT = "VLLM_NPU_GRAPH_DEMO_PORT"
HOST_ISA = "VLLM_NPU_GRAPH_HOST_ISA"

ENVIRONMENT_VARIABLES = {
    TARGET: "auto (default) | npu | host: which target the plugin drives",
    STRICT_GRAPHS: "1: a host graph that would behave differently from a device graph is an error (tests)",
    FAIL_CAPTURE_SIZES: (
        "comma-separated capture sizes whose capture fails on purpose; `oom:N`: every size of N "
        "tokens or more runs out of memory at capture (fault injection)"
    ),
    FAIL_COMPILE: "1: compiling the decoder fails on purpose, so it runs uncompiled (fault injection)",
    FAIL_STEP: "N: the model runner's N-th model step raises, a fatal engine-core error (fault injection)",
    HOST_ISA: (
        "auto (default) | avx2 | avx512 | avx512_bf16: the host target's x86 CPU tier (vLLM kernel build, "
        "our C++ op's instructions); a tier below the CPU's own runs that tier's code path"
    ),
    HOST_VISIBLE_DEVICES: "the host target's device-control variable (vLLM sets it per worker)",
    CACHE: "folder for the embedded model and run reports (default ~/.cache/vllm-npu-graph)",
    COMPILE_CACHE_DIR: "folder of our compile-cache entries (default $VLLM_CACHE_ROOT/npu_graph_compile_cache)",
    DEMO_PORT: "port of `vllm-npu-graph demo`'s server (default 8765)",
}
