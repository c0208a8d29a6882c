"""Which implementation our custom ops run in this process: the torch reference,
the Triton kernels (with a launch table), or the target's native fused ops."""

from collections.abc import Callable

from vllm_npu_graph.kernels.launch import LaunchTable

triton_table: LaunchTable | None = None  # None: no Triton kernels
native_ops: dict[str, Callable] = {}  # op name -> device library call (NPU: torch_npu)


def configure(table: LaunchTable | None, native: dict[str, Callable] | None = None) -> None:
    global triton_table, native_ops
    triton_table = table
    native_ops = dict(native or {})
