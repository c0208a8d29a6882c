"""vllm-npu-graph: a compiler-first vLLM platform plugin for Ascend NPUs.

`register()` is the `vllm.platform_plugins` entry point. vLLM calls it (twice per
process) to ask whether this plugin should own the platform; it must be cheap,
idempotent and must never import a device library unless that device is asked for.
"""

PLATFORM_QUALNAME = "vllm_npu_graph.platform.NPUGraphPlatform"


def register() -> str | None:
    """Return our platform's qualname when a target is active, else None.

    vLLM swallows exceptions raised here and would silently pick another platform,
    so a bad target request returns our qualname anyway: importing the platform then
    raises the same clear TargetError to the user.
    """
    from vllm_npu_graph import exit_gc
    from vllm_npu_graph.log import get_logger
    from vllm_npu_graph.targets import TargetError, resolve_target_name

    try:
        if resolve_target_name() is None:
            return None
    except TargetError as exc:
        get_logger("plugin").error("%s", exc)
    exit_gc.install()
    return PLATFORM_QUALNAME
