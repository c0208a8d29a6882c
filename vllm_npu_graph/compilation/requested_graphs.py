"""The user's own graph settings (`--compilation-config`), refused when we can't serve them.

Runs from the platform's `apply_config_platform_defaults`, before vLLM fills in its
defaults: there `cudagraph_mode` is still None unless the user set it (vLLM's default
then maps to FULL_DECODE_ONLY, logged, in platform.configure_graph_mode), and
`cudagraph_capture_sizes` is the user's list, which vLLM would later de-duplicate and
trim to max_num_batched_tokens with no more than a warning.
"""

from vllm_npu_graph.config import setting_error

SERVED_MODES = ("FULL_DECODE_ONLY", "NONE")
# Why each mode we don't serve can't be honoured, for the error line.
UNSERVED_WHY = {
    "FULL": (
        "FULL would capture prefill and mixed batches too, but our prefill attention sizes its grid from host values"
    ),
    "PIECEWISE": "piecewise graphs need the decoder split at attention, and we compile it whole",
    "FULL_AND_PIECEWISE": "piecewise graphs need the decoder split at attention, and we compile it whole",
}

NO_GRAPHS = 'to run without graphs set "cudagraph_mode": "NONE" or --enforce-eager'


def setting(name: str) -> str:
    return f'compilation_config["{name}"]'


def check_requested_graphs(vllm_config) -> None:
    from vllm.config import CUDAGraphMode
    from vllm.config.vllm import OptimizationLevel

    compilation = vllm_config.compilation_config
    mode = compilation.cudagraph_mode
    if mode is not None and mode.name not in SERVED_MODES:
        raise setting_error(
            setting("cudagraph_mode"),
            " or ".join(SERVED_MODES),
            mode.name,
            f"{UNSERVED_WHY[mode.name]}; leave it unset (decode graphs) or set FULL_DECODE_ONLY",
        )
    if mode == CUDAGraphMode.NONE or (mode is None and vllm_config.optimization_level == OptimizationLevel.O0):
        return  # no graphs (--enforce-eager, -O0): vLLM ignores and clears the sizes
    top = compilation.max_cudagraph_capture_size
    if top is not None and top < 1:
        raise setting_error(setting("max_cudagraph_capture_size"), ">= 1", top, NO_GRAPHS)
    sizes = compilation.cudagraph_capture_sizes
    where = setting("cudagraph_capture_sizes")
    if sizes is None:
        return
    if not sizes:
        raise setting_error(where, "at least one size", sizes, NO_GRAPHS)
    if small := sorted({s for s in sizes if s < 1}):
        raise setting_error(where, "sizes >= 1", sizes, f"drop {', '.join(map(str, small))}")
    if repeated := sorted({s for s in sizes if sizes.count(s) > 1}):
        raise setting_error(where, "distinct sizes", sizes, f"list {', '.join(map(str, repeated))} once")
    limit = vllm_config.scheduler_config.max_num_batched_tokens
    if limit is not None and (large := sorted({s for s in sizes if s > limit})):
        raise setting_error(
            where,
            f"sizes <= max_num_batched_tokens ({limit})",
            sizes,
            f"drop {', '.join(map(str, large))} or raise --max-num-batched-tokens",
        )
