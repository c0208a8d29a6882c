"""Target selection: which device (npu or host) the plugin drives in this process.

`VLLM_NPU_GRAPH_TARGET` = auto (default) | npu | host. `auto` picks the NPU only when an
Ascend device is really present and otherwise leaves the machine to vLLM's own platform.
"""

import functools

from vllm_npu_graph import envs
from vllm_npu_graph.envs import TARGET as ENV_VAR
from vllm_npu_graph.targets.base import Target, TargetError


def requested_target() -> str:
    try:
        return envs.read(ENV_VAR)
    except envs.EnvError as exc:
        raise TargetError(str(exc)) from None


def resolve_target_name() -> str | None:
    """The active target's name, or None when the plugin should stay inactive."""
    from vllm_npu_graph.targets import npu

    wanted = requested_target()
    if wanted == "host":
        return "host"
    missing = npu.missing_requirement()
    if wanted == "npu" and missing is not None:
        raise TargetError(
            f"{ENV_VAR}=npu but no Ascend NPU is usable here: {missing}. "
            f"Install the Ascend stack (pip install 'vllm-npu-graph[npu]' with CANN), "
            f"or set {ENV_VAR}=host to run the host (CPU) target."
        )
    return "npu" if missing is None else None


@functools.cache
def get_target() -> Target:
    """The active target instance (one per process)."""
    name = resolve_target_name()
    if name is None:
        raise TargetError(f"vllm-npu-graph is not active: no Ascend NPU was found and {ENV_VAR} is not 'host'.")
    if name == "host":
        from vllm_npu_graph.targets.host import HostTarget

        return HostTarget()
    from vllm_npu_graph.targets.npu import NPUTarget

    return NPUTarget()


__all__ = ["ENV_VAR", "Target", "TargetError", "get_target", "resolve_target_name"]
