"""Our worker: vLLM's GPU Worker with device set-up and memory planning from the target."""

import os
from contextlib import nullcontext

from vllm.config import CUDAGraphMode
from vllm.distributed.parallel_state import get_pp_group
from vllm.utils.mem_utils import format_gib
from vllm.utils.torch_utils import set_random_seed
from vllm.v1.worker.gpu_worker import Worker, init_worker_distributed_environment
from vllm.v1.worker.worker_base import CompilationTimes

from vllm_npu_graph import logits, moe, w8a8  # noqa: F401  (register our LM head, MoE and int8 layers before the model is built)
from vllm_npu_graph.config import plugin_config
from vllm_npu_graph.log import get_logger
from vllm_npu_graph.targets import get_target
from vllm_npu_graph.worker import device_binding
from vllm_npu_graph.worker.model_runner import NPUGraphModelRunner

logger = get_logger(__name__)

GiB = 1 << 30


class NPUGraphWorker(Worker):
    def init_device(self) -> None:
        from vllm.platforms import current_platform

        current_platform.check_if_supports_dtype(self.model_config.dtype)
        self._init_device_and_groups()
        set_random_seed(self.model_config.seed)
        self._select_kernels()
        self._init_workspace_and_model_runner()

    def _init_device_and_groups(self) -> None:
        """Bind this rank to its device, then create the distributed groups with the
        target's process-group backend."""
        from vllm.platforms import current_platform

        self.target = get_target()
        self.target.activate()
        self.local_rank = device_binding.dp_shifted_local_rank(self.local_rank, self.parallel_config)
        self.device = self.target.device(
            device_binding.device_index(self.local_rank, self.parallel_config, current_platform)
        )
        self.target.set_device(self.device)
        init_worker_distributed_environment(
            self.vllm_config,
            self.rank,
            self.distributed_init_method,
            self.local_rank,
            current_platform.dist_backend,
        )

    def _select_kernels(self) -> None:
        from vllm_npu_graph.ops import kernel_choice

        choice = self.target.kernels_for(plugin_config(self.vllm_config).kernels)
        kernel_choice.configure(
            self.target.triton_launch_table() if choice == "triton" else None, self.target.native_ops(choice)
        )
        interpreted = choice == "triton" and os.environ.get("TRITON_INTERPRET") == "1"
        logger.info(
            "npu_graph: %s; kernels (attention and fused ops): %s%s",
            self.target.describe(),
            choice,
            " (Triton CPU interpreter)" if interpreted else "",
        )

    def load_model(self, *args, **kwargs) -> None:
        """vLLM sets serving's thread count at the end of load_model (before profiling and
        compiling, whose guards include it); the target's choice replaces it there."""
        super().load_model(*args, **kwargs)
        self.target.set_compute_threads(plugin_config(self.vllm_config).host_threads, self.parallel_config.world_size)

    def _make_model_runner(self) -> NPUGraphModelRunner:
        return NPUGraphModelRunner(self.vllm_config, self.device)

    def _maybe_get_memory_pool_context(self, tag: str):
        return nullcontext()  # no sleep-mode memory pool on our targets

    def sleep(self, level: int = 1) -> None:
        raise RuntimeError("Sleep mode is not supported by vllm-npu-graph.")

    def wake_up(self, tags=None) -> None:
        raise RuntimeError("Sleep mode is not supported by vllm-npu-graph.")

    def warmup_report(self) -> dict:
        """What this rank's start-up compiled or loaded and captured (for `warmup`)."""
        from vllm_npu_graph.compilation.backend import compile_events

        return {
            "rank": self.rank,
            "compile": list(compile_events),
            "compilation_time_s": self.compilation_config.compilation_time,
            "capture": list(self.model_runner.capture_report),
            "capture_phase_s": self.model_runner.capture_phase_s,
            "coverage": self.model_runner.graph_coverage.as_dict(),
        }

    def determine_available_memory(self) -> int:
        """KV-cache bytes: --kv-cache-memory-bytes if given, else the utilisation
        share of device memory left after weights and the graphs (estimated now, by
        a forward at the largest capture size: capture after the KV cache has taken
        the memory would fail), capped on host by `host_kv_cache_gib`, since host RAM
        is shared with the whole machine."""
        explicit = self.cache_config.kv_cache_memory_bytes
        free = self.target.free_memory()
        if explicit is not None:
            if explicit > free:
                raise ValueError(
                    f"--kv-cache-memory-bytes={explicit} exceeds the free memory on the "
                    f"{self.target.name} target ({format_gib(free)} GiB); lower it."
                )
            budget, why = explicit, "as set by --kv-cache-memory-bytes"
        else:
            self.model_runner.profile_run()
            graphs = self.model_runner.estimate_graph_memory()
            total = self.target.total_memory()
            share = int(self.cache_config.gpu_memory_utilization * total) - self.target.memory_in_use() - graphs
            budget = min(share, free - graphs)
            why = (
                f"gpu_memory_utilization={self.cache_config.gpu_memory_utilization}, after "
                f"{graphs / 2**20:.1f} MiB reserved for graphs"
            )
            if self.target.name == "host":
                cap = int(plugin_config(self.vllm_config).host_kv_cache_gib * GiB)
                if cap < budget:
                    budget, why = cap, f"host_kv_cache_gib cap; graphs estimated at {graphs / 2**20:.1f} MiB"
        if budget <= 0:
            raise ValueError(
                f"No memory is left for the KV cache on the {self.target.name} target "
                f"(free {format_gib(free)} GiB); lower --gpu-memory-utilization's competitors "
                "or set --kv-cache-memory-bytes."
            )
        logger.info("KV cache: %s GiB on the %s target (%s).", format_gib(budget), self.target.name, why)
        return budget

    def compile_or_warm_up_model(self) -> CompilationTimes:
        """Compile on a warm-up forward that is never captured, then capture the graphs
        (KV cache exists now), then warm the sampler (or a pooling model's pooler) at
        the largest batch. vLLM's GPU
        version also runs CUDA-only kernel warm-ups."""
        runner = self.model_runner
        max_reqs = min(self.scheduler_config.max_num_seqs, self.scheduler_config.max_num_batched_tokens)
        if not self.model_config.enforce_eager:
            # On one token Dynamo would specialise the graph to one token (then every
            # larger batch fails), so compile on two or more.
            runner._dummy_run(num_tokens=max(2, max_reqs), cudagraph_runtime_mode=CUDAGraphMode.NONE, skip_eplb=True)
            runner.capture_model()
        hidden, last_hidden = runner._dummy_run(
            num_tokens=max_reqs, cudagraph_runtime_mode=CUDAGraphMode.NONE, skip_eplb=True
        )
        if not get_pp_group().is_last_rank:  # earlier pipeline stages output IntermediateTensors
            pass
        elif runner.is_pooling_model:  # --runner pooling: no LM head, a pooler instead
            runner._dummy_pooler_run(hidden)
        else:
            runner._dummy_sampler_run(hidden_states=last_hidden)
        set_random_seed(self.model_config.seed)
        return CompilationTimes(
            language_model=self.compilation_config.compilation_time,
            encoder=self.compilation_config.encoder_compilation_time,
        )
