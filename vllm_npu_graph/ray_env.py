"""What vLLM's Ray executor needs from our platform before it starts worker actors.

The V2 executor unpickles the engine config in each new actor, which resolves the
platform (our `register()`) before the driver's environment is applied to the actor.
So our variables (the target above all) must ride in the actors' Ray runtime env, or
an actor would come up on vLLM's CPU platform. The legacy executor is refused. (Data
parallel over Ray needs nothing here: vLLM copies every VLLM_* variable to its engine
actors itself.)
"""

import os

from vllm_npu_graph import envs
from vllm_npu_graph.config import PluginConfigError


def prepare_ray_workers(parallel_config) -> None:
    """Refuse the legacy Ray executor; put our set variables into the workers' runtime env."""
    if parallel_config.distributed_executor_backend != "ray":
        return
    from vllm import envs as vllm_envs

    if not vllm_envs.VLLM_USE_RAY_V2_EXECUTOR_BACKEND:
        raise PluginConfigError(
            "vllm-npu-graph runs on vLLM's Ray V2 executor only; unset VLLM_USE_RAY_V2_EXECUTOR_BACKEND "
            "(or set it to 1)."
        )
    try:
        from ray.runtime_env import RuntimeEnv
    except ImportError:
        return  # vLLM's executor says that Ray is missing and how to install it
    ours = {name: value for name, value in os.environ.items() if name.startswith(envs.PREFIX)}
    runtime_env = dict(parallel_config.ray_runtime_env or {})
    runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **ours}
    parallel_config.ray_runtime_env = RuntimeEnv(**runtime_env)
