"""The Target contract: every device fact and device call the plugin needs.

Only modules under `targets/` may touch a device API; the platform, worker, runner,
compiler and attention code ask the active target instead.
"""

import contextlib
import os
from abc import ABC, abstractmethod

import torch


class TargetError(RuntimeError):
    """A target cannot be used as asked; the message says how to fix it."""


def step_tensors(value) -> list[torch.Tensor]:
    """The tensors of a step's input or output: a tensor, vLLM's IntermediateTensors
    (what pipeline stages hand each other), or tuples / lists of them."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in step_tensors(v)]
    named = getattr(value, "tensors", None)  # IntermediateTensors
    if isinstance(named, dict):
        return [named[k] for k in sorted(named)]
    return []


def refresh_static_inputs(static_args, static_kwargs, args, kwargs) -> None:
    """A captured graph reads the tensors it saw at capture: copy any input that now
    lives elsewhere into them (the runner's persistent buffers normally don't move)."""
    pairs = list(zip(static_args, args)) + [(static_kwargs.get(k), v) for k, v in kwargs.items()]
    for static, new in pairs:
        if new is static:  # weights and persistent buffers: the same object every step
            continue
        for kept, now in zip(step_tensors(static), step_tensors(new), strict=False):
            if kept.data_ptr() != now.data_ptr():
                kept.copy_(now)


def copy_outputs(static_output, result) -> None:
    """Write a replayed step's result into the static output a device graph would have
    written (IntermediateTensors included: a non-last pipeline stage's output)."""
    for dst, src in zip(step_tensors(static_output), step_tensors(result), strict=True):
        dst.copy_(src)


class Target(ABC):
    name: str
    device_type: str  # torch device type of tensors on this target
    device_name: str
    dispatch_key: str
    dist_backend: str
    device_control_env_var: str
    # vLLM's device communicator: all-reduce, all-gather and reduce-scatter as
    # torch.distributed collectives on the device group, which HCCL serves on the NPU
    # and gloo on the host (tests/fakes/hccl_worker_check.py, test_tensor_parallel.py).
    communicator_cls = "vllm.distributed.device_communicators.base_device_communicator.DeviceCommunicatorBase"
    pin_memory: bool

    def device_count(self) -> int:
        """Devices of this node (vLLM's multi-node launch compares ranks per node)."""
        visible = os.environ.get(self.device_control_env_var, "")
        return len([d for d in visible.split(",") if d.strip()]) or self.default_device_count()

    @abstractmethod
    def default_device_count(self) -> int: ...

    @abstractmethod
    def device(self, local_rank: int) -> torch.device:
        """The torch device a worker with this local rank runs on."""

    @abstractmethod
    def set_device(self, device: torch.device) -> None: ...

    @abstractmethod
    def synchronize(self) -> None: ...

    @abstractmethod
    def total_memory(self, device_id: int = 0) -> int:
        """Bytes of device memory (host: RAM)."""

    @abstractmethod
    def memory_in_use(self) -> int:
        """Bytes this process holds on the device now."""

    @abstractmethod
    def free_memory(self) -> int:
        """Bytes of device memory free now."""

    def activate(self) -> None:
        """Process-wide set-up before vLLM's runner starts (idempotent); raises
        TargetError when this machine can't run the target as asked."""

    def import_kernels(self, logger) -> None:
        """vLLM's own C++ kernels for this device (the platform's import_kernels hook);
        default none: vLLM built for an NPU (VLLM_TARGET_DEVICE=empty) has no `_C`."""

    def describe(self) -> str:
        """One line for the start-up log and `vllm-npu-graph info`."""
        return f"{self.name} target ({self.device_name})"

    @abstractmethod
    def graph_pool(self):
        """The memory pool all captured graphs share (one per process)."""

    @abstractmethod
    def lower_graph(self, graph, example_inputs, pass_manager):
        """Compile the whole-decoder FX graph, running `pass_manager` on its aten form."""

    @abstractmethod
    def capture_graph(self, fn, args, kwargs):
        """Capture fn(*args, **kwargs) as a device graph with `.output` and `.replay()`."""

    capturing: bool = False  # inside capture_context()

    def side_stream(self, *args, **kwargs):
        """A stream for vLLM's runner to copy on beside the compute stream."""
        raise NotImplementedError

    @contextlib.contextmanager
    def runner_construction(self):
        """vLLM's GPU runner builds `torch.cuda.Stream()`s in its constructor (copy
        streams for speculative decoding's draft tokens); while ours is built they are
        this target's streams. Scoped to the constructor: torch.cuda is left as found."""
        cuda_stream = torch.cuda.Stream
        torch.cuda.Stream = self.side_stream
        try:
            yield
        finally:
            torch.cuda.Stream = cuda_stream

    @contextlib.contextmanager
    def capture_context(self):
        """The capture phase: device idle first, then every capture inside it. Our
        collectives are torch.distributed calls on the device group (no custom
        all-reduce buffers to register), which the NPU's graph capture records as-is."""
        self.synchronize()
        self.capturing = True
        try:
            yield
        finally:
            self.capturing = False
            self.synchronize()

    def set_compute_threads(self, requested: int, ranks: int) -> None:
        """Host threads for this rank's compute (devices compute elsewhere: default none)."""

    def measure_peak(self, fn) -> tuple[object, int]:
        """fn()'s result and the most bytes it held on the device above the start."""
        before = self.memory_in_use()
        result = fn()
        return result, max(0, self.memory_in_use() - before)

    @abstractmethod
    def triton_launch_table(self):
        """The LaunchTable our Triton kernels use here (prepares Triton if needed)."""

    default_kernels: str = "triton"  # attention kernels when the option says "auto"

    max_graph_sizes: int | None = None  # default cap on captured sizes (None: no cap)

    def is_out_of_memory(self, exc: Exception) -> bool:
        """Whether exc says the device (host: RAM) ran out of memory."""
        return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower()

    def explain_capture_error(self, exc: Exception) -> str | None:
        """A user-facing explanation (with the fix) of a known capture failure."""
        if self.is_out_of_memory(exc):
            return (
                f"out of memory ({type(exc).__name__}: {exc}): leave more memory for graphs (a lower "
                "--gpu-memory-utilization or --kv-cache-memory-bytes) or capture smaller sizes (a lower "
                "--compilation-config max_cudagraph_capture_size)"
            )
        return None

    def native_ops(self, kernels: str) -> dict:
        """Op implementations from the device's own library, by op name, for a kernels
        choice (default none)."""
        return {}

    def kernels_for(self, choice: str) -> str:
        """The `kernels` option resolved: "auto" is the target's default."""
        return self.default_kernels if choice == "auto" else choice

    def lowering_passes(self, kernels: str) -> list:
        """(name, pass) steps run after our passes that lower our ops to this target's
        own (default none)."""
        return []

    kv_cache_layout: str = "LBNHC"  # physical KV layout (vLLM KVCacheLayout name)

    def prepare_triton(self) -> None:
        """Process-environment set-up Triton needs here, before it is imported."""

    def register_kernel_overrides(self) -> None:
        """Replace vLLM runner kernels this target can't run (default: none)."""

    def cache_facts(self) -> dict[str, str]:
        """Versions of this target's compiler stack that a compiled artifact depends on
        (part of the compile-cache key)."""
        return {}

    def save_compiled(self, compiled, path: str) -> bool:
        """Write the lowered decoder to `path`; False when this target can't save it."""
        return False

    def load_compiled(self, path: str, graph):
        """The callable saved at `path` by save_compiled (graph: the FX graph it came from)."""
        raise NotImplementedError(f"the {self.name} target does not load compiled artifacts")

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def supported_dtypes(self) -> list[torch.dtype]:
        return [torch.bfloat16, torch.float16, torch.float32]
