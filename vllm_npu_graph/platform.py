"""NPUGraphPlatform: the vLLM platform (PlatformEnum.OOT) for both targets.

Device facts come from the active target, so the host target walks the same vLLM code
path as the NPU. This module is imported only once `register()` has chosen a target.
"""

import os

import torch
from vllm.platforms.interface import Platform, PlatformEnum

from vllm_npu_graph.config import (
    SUPPORTED_ARCHITECTURES,
    PluginConfigError,
    check_dump_dir,
    plugin_config,
    setting_error,
)
from vllm_npu_graph.log import get_logger
from vllm_npu_graph.ray_env import prepare_ray_workers
from vllm_npu_graph.targets import get_target

logger = get_logger(__name__)
_target = get_target()

WORKER_QUALNAME = "vllm_npu_graph.worker.worker.NPUGraphWorker"
SOURCES_KEY = "npu_graph_sources"  # additional_config entry: our sources' digest (mark_sources)
COMPILER_QUALNAME = "vllm_npu_graph.compilation.backend.NPUGraphCompiler"
ATTENTION_QUALNAME = "vllm_npu_graph.attention.backend.NPUGraphAttentionBackend"


class UnsupportedModelError(ValueError):
    pass


class NPUGraphPlatform(Platform):
    _enum = PlatformEnum.OOT
    device_name: str = _target.device_name
    device_type: str = _target.device_type
    dispatch_key: str = _target.dispatch_key
    dist_backend: str = _target.dist_backend
    device_control_env_var: str = _target.device_control_env_var
    # Ray schedules workers on its "NPU" accelerator resource on both targets (the host
    # target walks the NPU's path); vLLM, not Ray, then picks each worker's device.
    ray_device_key: str = "NPU"
    ray_noset_device_env_vars: list[str] = ["RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES"]
    supported_quantization: list[str] = ["compressed-tensors"]  # W8A8 int8 only (w8a8.py)

    @property
    def supported_dtypes(self) -> list[torch.dtype]:
        return _target.supported_dtypes()

    @classmethod
    def verify_quantization(cls, quant: str) -> None:
        """Before weights load: one line naming what we serve (w8a8.py checks the scheme)."""
        if quant not in cls.supported_quantization:
            from vllm_npu_graph.w8a8 import refusal

            raise PluginConfigError(refusal(f"quantization method {quant!r}"))

    @classmethod
    def check_runner_kv_caches_multi_layer(cls) -> None:
        """A draft model's layers share layer indices with the target's; harmless here:
        our attention finds each layer's KV cache by its name in the forward context."""

    @classmethod
    def get_device_name(cls, device_id: int = 0) -> str:
        return f"{_target.device_name} ({_target.name} target)"

    @classmethod
    def device_count(cls) -> int:
        return _target.device_count()

    @classmethod
    def get_device_total_memory(cls, device_id: int = 0) -> int:
        return _target.total_memory(device_id)

    @classmethod
    def get_current_memory_usage(cls, device=None) -> float:
        return float(_target.memory_in_use())

    @classmethod
    def set_device(cls, device: torch.device) -> None:
        _target.set_device(device)

    @classmethod
    def manual_seed_all(cls, seed: int) -> None:
        _target.manual_seed_all(seed)

    @classmethod
    def is_pin_memory_available(cls) -> bool:
        return _target.pin_memory

    @classmethod
    def check_if_supports_dtype(cls, dtype: torch.dtype) -> None:
        if dtype not in _target.supported_dtypes():
            raise ValueError(
                f"dtype {dtype} is not supported on the {_target.name} target; "
                f"use --dtype with one of {_target.supported_dtypes()}."
            )

    @classmethod
    def get_device_communicator_cls(cls) -> str:
        return _target.communicator_cls

    @classmethod
    def opaque_attention_op(cls) -> bool:
        return True

    @classmethod
    def get_punica_wrapper(cls) -> str:
        return "vllm_npu_graph.lora.NPUGraphPunicaWrapper"

    @classmethod
    def verify_model_arch(cls, model_arch: str) -> None:
        if model_arch not in SUPPORTED_ARCHITECTURES:
            raise UnsupportedModelError(
                f"vllm-npu-graph does not support the architecture {model_arch!r}; "
                f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}. Serve this model with "
                f"another platform (unset VLLM_NPU_GRAPH_TARGET)."
            )

    @classmethod
    def get_attn_backend_cls(cls, selected_backend, attn_selector_config, num_heads=None) -> str:
        from vllm.v1.attention.backends.registry import AttentionBackendEnum, register_backend

        if attn_selector_config.use_mla or attn_selector_config.use_sparse:
            raise NotImplementedError(
                "MLA / sparse attention is not supported by vllm-npu-graph; "
                f"supported architectures: {', '.join(SUPPORTED_ARCHITECTURES)}."
            )
        if selected_backend not in (None, AttentionBackendEnum.CUSTOM):
            logger.warning(
                "Attention backend %s was requested, but vllm-npu-graph always uses its own "
                "paged attention backend; ignoring the request.",
                selected_backend.name,
            )
        register_backend(AttentionBackendEnum.CUSTOM, ATTENTION_QUALNAME)
        return ATTENTION_QUALNAME

    @classmethod
    def import_kernels(cls) -> None:
        """The target's choice, never vLLM's default `import vllm._C`: on the host that is
        the AVX-512 + bf16 build, which dies with SIGILL on any other CPU."""
        _target.import_kernels(logger)

    @classmethod
    def register_triton_kernel_overrides(cls) -> None:
        _target.register_kernel_overrides()

    @classmethod
    def pre_register_and_update(cls, parser=None) -> None:
        """Runs in the API server before its engine starts: a deliberate stop there must not
        log vLLM's spurious EngineDeadError traceback (shutdown_log.py says why)."""
        from vllm_npu_graph import shutdown_log

        shutdown_log.install()

    @classmethod
    def apply_config_platform_defaults(cls, vllm_config) -> None:
        """Runs before vLLM fills in its compilation defaults: the only place that sees
        which graph settings the user gave."""
        from vllm_npu_graph.compilation.requested_graphs import check_requested_graphs

        check_requested_graphs(vllm_config)

    @classmethod
    def check_and_update_config(cls, vllm_config) -> None:
        """Validate our options and wire our worker. Runs in several processes: it
        must be idempotent."""
        options = plugin_config(vllm_config)  # raises on invalid options
        check_kernels_and_passes(options)
        check_dump_dir(options.dump_graph_dir)
        check_features(vllm_config)
        if options.kernels == "triton":
            _target.prepare_triton()  # before engine processes spawn and import Triton
        model = vllm_config.model_config
        if model is not None:
            cls.verify_model_arch(getattr(model, "architecture", None) or model.architectures[0])
        _target.activate()

        parallel = vllm_config.parallel_config
        if parallel.worker_cls == "auto":
            parallel.worker_cls = WORKER_QUALNAME
        prepare_ray_workers(parallel)

        # Our runner copies sampled tokens synchronously; async output streams are CUDA-only.
        vllm_config.scheduler_config.async_scheduling = False
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")

        configure_graph_mode(vllm_config, options)
        mark_sources(vllm_config)

    @classmethod
    def validate_environ(cls, hard_fail: bool) -> None:
        """vLLM's check of VLLM_* variables, knowing ours: our documented ones pass,
        a misspelt VLLM_NPU_GRAPH_* one is named with the valid ones."""
        from vllm import envs as vllm_envs

        from vllm_npu_graph import envs

        for name in os.environ:
            if not name.startswith("VLLM_") or name in vllm_envs.environment_variables:
                continue
            if name.startswith(envs.PREFIX):
                if name in envs.ENVIRONMENT_VARIABLES:
                    continue
                message = (
                    f"Unknown vllm-npu-graph environment variable {name}; valid ones: "
                    f"{', '.join(envs.ENVIRONMENT_VARIABLES)}."
                )
            else:
                message = f"Unknown vLLM environment variable detected: {name}"
            if hard_fail:
                raise PluginConfigError(message)
            logger.warning(message)

    def get_global_graph_pool(self):
        return _target.graph_pool()

    @classmethod
    def support_static_graph_mode(cls) -> bool:
        return True  # our runner captures and replays one graph per padded size

    @classmethod
    def get_compile_backend(cls) -> str:
        return COMPILER_QUALNAME


SPECULATIVE_METHODS = ("ngram", "draft_model")


def check_features(vllm_config) -> None:
    """vLLM features our worker or attention can't serve, refused before the engine starts."""
    from vllm_npu_graph.lora import check_lora

    refusal = check_lora(vllm_config)
    if refusal is not None:
        raise PluginConfigError(refusal)
    # vLLM's GPU runner would die later with a raw traceback on each of these (a CUDA
    # stream for draft tokens, a pooling stage our runner lacks); quantized checkpoints as w8a8.py says.
    spec = vllm_config.speculative_config
    if spec is not None and spec.method not in SPECULATIVE_METHODS:
        raise PluginConfigError(
            f"speculative decoding method {spec.method!r} is not supported by vllm-npu-graph; "
            f'supported: {", ".join(SPECULATIVE_METHODS)} (--speculative-config \'{{"method": "ngram", ...}}\').'
        )
    model = vllm_config.model_config
    from vllm_npu_graph.w8a8 import check_model

    refusal = check_model(model)
    if refusal is not None:
        raise PluginConfigError(refusal)
    cache_dtype = vllm_config.cache_config.cache_dtype
    if cache_dtype != "auto":
        raise setting_error(
            "kv_cache_dtype", "auto (the model's dtype) on vllm-npu-graph", cache_dtype, "drop --kv-cache-dtype"
        )


def check_kernels_and_passes(options) -> None:
    """Choices that can't work together on this target, refused before weights load."""
    from vllm_npu_graph.passes import enabled_passes

    kernels = _target.kernels_for(options.kernels)
    if kernels == "native" and _target.name != "host":
        raise PluginConfigError(
            'additional_config["npu_graph"]["kernels"] = "native" is the host target\'s (vLLM\'s CPU ops); '
            f"on the {_target.name} target use auto, triton or reference."
        )
    if kernels == "native" and any(p.NAME == "rope_kv_write" for p in enabled_passes(_target.name, options.passes)):
        raise PluginConfigError(
            "the rope_kv_write pass writes the KV cache in our kernels' format, which the host's native attention "
            'does not read: switch it off ("passes": {"rope_kv_write": false}) '
            'or use "kernels": "reference" or "triton".'
        )


def mark_sources(vllm_config) -> None:
    """vLLM's AOT-compile cache (torch_compile_cache/torch_aot_compile) is keyed on the
    configuration, not on our code, yet the graph it holds depends on what our code set
    at load (an int8 weight as loaded or a packed handle): our sources' digest joins the
    configuration through additional_config, which vLLM hashes into that key."""
    import hashlib

    from vllm_npu_graph.compilation.cache_key import source_hashes

    extra = vllm_config.additional_config
    if isinstance(extra, dict):
        extra[SOURCES_KEY] = hashlib.sha256(repr(sorted(source_hashes().items())).encode()).hexdigest()[:16]


def configure_graph_mode(vllm_config, options) -> None:
    """Whole-decoder compile through our backend, FULL graphs replayed by our wrapper."""
    from vllm.config import CompilationMode, CUDAGraphMode

    from vllm_npu_graph.passes import enabled_passes

    compilation = vllm_config.compilation_config
    model = vllm_config.model_config
    if compilation.mode != CompilationMode.VLLM_COMPILE:
        if compilation.cudagraph_mode != CUDAGraphMode.NONE:
            logger.info(
                "vllm-npu-graph: compilation mode %s has no graph capture; running without graphs.",
                compilation.mode.name,
            )
        compilation.cudagraph_mode = CUDAGraphMode.NONE
        return
    # Our compiler gets the whole decoder, attention inside; caching of its artifacts
    # is ours, not Inductor's mega-artifact.
    compilation.backend = ""
    compilation.splitting_ops = []
    # Passes matching vLLM's IR ops (RMSNorm) need them kept as ops in the graph.
    quantized = model is not None and model.quantization is not None
    if any(p.NEEDS_IR_WRAP for p in enabled_passes(_target.name, options.passes, quantized)):
        compilation.ir_enable_torch_wrap = True
    if compilation.compile_sizes is None:
        compilation.compile_sizes = []  # vLLM leaves it None for OOT platforms, then can't dispatch
    compilation.pass_config.fuse_norm_quant = False
    compilation.pass_config.fuse_act_quant = False
    os.environ["VLLM_USE_MEGA_AOT_ARTIFACT"] = "0"
    mode = compilation.cudagraph_mode
    if model is not None and model.enforce_eager:
        mode = CUDAGraphMode.NONE
    elif model is not None and model.runner_type == "pooling" and mode != CUDAGraphMode.NONE:
        logger.info(
            "vllm-npu-graph: a pooling model runs one prefill per request and never decodes: the compiled "
            "decoder serves it, without decode graphs."
        )
        mode = CUDAGraphMode.NONE
        compilation.cudagraph_capture_sizes, compilation.max_cudagraph_capture_size = [], 0
    elif mode != CUDAGraphMode.NONE and mode != CUDAGraphMode.FULL_DECODE_ONLY:
        # vLLM's default mode (a mode the user set explicitly was refused in
        # apply_config_platform_defaults). Our attention reads every length from device
        # tensors only for decode batches (prefill kernels size their grid from host
        # ints), and with splitting_ops=[] there are no pieces: decode batches replay one
        # whole-decoder graph, the rest run eagerly (logged).
        logger.info(
            "vllm-npu-graph: cudagraph_mode %s maps to FULL_DECODE_ONLY (whole-decoder graphs for "
            "decode batches; prefill and mixed batches run eagerly).",
            mode.name,
        )
        mode = CUDAGraphMode.FULL_DECODE_ONLY
    compilation.cudagraph_mode = mode
    if mode != CUDAGraphMode.NONE:
        limit = options.max_graph_sizes if options.max_graph_sizes is not None else _target.max_graph_sizes
        query_len = 1 + vllm_config.num_speculative_tokens
        limit_capture_sizes(compilation, limit, vllm_config.scheduler_config.max_num_seqs, query_len)


def limit_capture_sizes(compilation, limit: int | None, max_num_seqs: int, query_len: int = 1) -> None:
    """Decode graphs serve at most max_num_seqs requests of query_len tokens each (1, or
    1 + k speculative tokens): sizes are whole requests' tokens. Within the graph-count
    limit, keep the request counts with the least padding waste
    (compilation/capture_sizes.py)."""
    from vllm_npu_graph.compilation.capture_sizes import choose_capture_sizes, worst_padding

    sizes = sorted(compilation.cudagraph_capture_sizes or [])
    if not sizes:
        return
    requests = sorted({-(-s // query_len) for s in sizes})
    keep = choose_capture_sizes(requests, limit, max_num_seqs)
    worst, batch = worst_padding(keep)
    tokens = [r * query_len for r in keep]
    logger.info(
        "vllm-npu-graph: capture sizes on the %s target: %d of %d kept (limit %s): %s; worst-case "
        "padding %.0f%% (a batch of %d requests runs the graph of %d)%s",
        _target.name,
        len(keep),
        len(requests),
        limit or "none",
        tokens,
        100 * worst,
        batch,
        next(s for s in keep if s >= batch),
        f"; each request {query_len} tokens (1 + speculative tokens)" if query_len > 1 else "",
    )
    compilation.cudagraph_capture_sizes = tokens
    compilation.max_cudagraph_capture_size = tokens[-1]
