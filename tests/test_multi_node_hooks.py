"""The platform hooks vLLM's distributed machinery calls (Ray executor, multi-node
launch, data and pipeline parallel), without engines: Ray's resource and no-set
variable, the node's device count, each rank's device, and pipeline stages' outputs
through a replayed graph."""

from types import SimpleNamespace

import pytest
import torch
from vllm.sequence import IntermediateTensors

from vllm_npu_graph import envs
from vllm_npu_graph.platform import NPUGraphPlatform
from vllm_npu_graph.targets.base import copy_outputs, refresh_static_inputs
from vllm_npu_graph.targets.host import HostTarget
from vllm_npu_graph.worker import device_binding


def test_ray_schedules_on_its_npu_resource_and_leaves_device_choice_to_vllm():
    assert NPUGraphPlatform.ray_device_key == "NPU"  # a key Ray knows (get_accelerator_ids)
    assert NPUGraphPlatform.ray_noset_device_env_vars == ["RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES"]


def test_device_count_follows_the_visible_devices(monkeypatch):
    monkeypatch.delenv(envs.HOST_VISIBLE_DEVICES, raising=False)
    assert NPUGraphPlatform.device_count() == HostTarget().device_count() == 8
    monkeypatch.setenv(envs.HOST_VISIBLE_DEVICES, "0,1,2")
    assert NPUGraphPlatform.device_count() == 3


def parallel(**overrides):
    base = dict(
        distributed_executor_backend="mp",
        data_parallel_backend="mp",
        nnodes_within_dp=1,
        data_parallel_rank_local=None,
        data_parallel_index=0,
        pipeline_parallel_size=1,
        prefill_context_parallel_size=1,
        tensor_parallel_size=2,
        assigned_physical_gpu_ids=None,
    )
    return SimpleNamespace(**{**base, **overrides})


def test_a_data_parallel_rank_binds_the_devices_after_the_ranks_before_it():
    assert device_binding.dp_shifted_local_rank(1, parallel()) == 1
    assert device_binding.dp_shifted_local_rank(1, parallel(data_parallel_rank_local=1)) == 3
    assert device_binding.dp_shifted_local_rank(0, parallel(data_parallel_index=2, pipeline_parallel_size=2)) == 8
    # Ray places each worker itself; across nodes the local rank is already the node's
    assert (
        device_binding.dp_shifted_local_rank(1, parallel(distributed_executor_backend="ray", data_parallel_index=1))
        == 1
    )
    assert device_binding.dp_shifted_local_rank(1, parallel(nnodes_within_dp=2, data_parallel_index=1)) == 1
    # vLLM hands an out-of-tree platform's DP rank its own share of devices: no shift
    assert (
        device_binding.dp_shifted_local_rank(0, parallel(data_parallel_rank_local=1, assigned_physical_gpu_ids=[1]))
        == 0
    )


@pytest.fixture
def no_assignment():
    import vllm.platforms.interface as interface

    yield
    interface._assigned_physical_gpu_ids = None  # process-wide in vLLM: reset between tests


def test_assigned_physical_devices_map_through_the_visible_ones(monkeypatch, no_assignment):
    monkeypatch.setenv(envs.HOST_VISIBLE_DEVICES, "4,5,6,7")
    assert device_binding.device_index(1, parallel(assigned_physical_gpu_ids=[6, 7]), NPUGraphPlatform) == 3
    with pytest.raises(ValueError, match="no device among the assigned ones"):
        device_binding.device_index(2, parallel(assigned_physical_gpu_ids=[6, 7]), NPUGraphPlatform)


def test_a_replayed_pipeline_stage_hands_on_this_steps_hidden_states():
    """A non-last stage's graph output is IntermediateTensors: the replay must write
    this step's values into it (and read this step's inputs), not keep capture's."""
    static_out = IntermediateTensors({"hidden_states": torch.zeros(4, 8), "residual": torch.zeros(4, 8)})
    step = IntermediateTensors({"hidden_states": torch.ones(4, 8), "residual": torch.full((4, 8), 2.0)})
    copy_outputs(static_out, step)
    assert torch.equal(static_out["hidden_states"], step["hidden_states"])
    assert torch.equal(static_out["residual"], step["residual"])
    static_in = IntermediateTensors({"hidden_states": torch.zeros(4, 8)})
    refresh_static_inputs([static_in], {}, [IntermediateTensors({"hidden_states": torch.full((4, 8), 3.0)})], {})
    assert torch.equal(static_in["hidden_states"], torch.full((4, 8), 3.0))


def ray_parallel(**overrides):
    return SimpleNamespace(**{"distributed_executor_backend": "ray", "ray_runtime_env": None, **overrides})


def test_ray_worker_actors_get_our_variables_in_their_runtime_env(monkeypatch):
    """A worker actor resolves its platform before the driver's environment reaches
    it: without the target in its runtime env it would come up on vLLM's CPU platform."""
    from ray.runtime_env import RuntimeEnv

    from vllm_npu_graph.ray_env import prepare_ray_workers

    monkeypatch.setenv(envs.TARGET, "host")
    monkeypatch.setenv(envs.HOST_VISIBLE_DEVICES, "0,1")
    pc = ray_parallel(ray_runtime_env=RuntimeEnv(env_vars={"USER_VAR": "1"}, working_dir="."))
    prepare_ray_workers(pc)
    env_vars = pc.ray_runtime_env["env_vars"]
    assert env_vars[envs.TARGET] == "host" and env_vars[envs.HOST_VISIBLE_DEVICES] == "0,1"
    assert env_vars["USER_VAR"] == "1" and pc.ray_runtime_env["working_dir"] == "."
    untouched = ray_parallel(distributed_executor_backend="mp")
    prepare_ray_workers(untouched)
    assert untouched.ray_runtime_env is None


def test_the_legacy_ray_executor_is_refused_with_the_switch_to_flip(monkeypatch):
    from vllm_npu_graph.config import PluginConfigError
    from vllm_npu_graph.ray_env import prepare_ray_workers

    monkeypatch.setenv("VLLM_USE_RAY_V2_EXECUTOR_BACKEND", "0")
    with pytest.raises(PluginConfigError, match="Ray V2 executor only; unset VLLM_USE_RAY_V2_EXECUTOR_BACKEND"):
        prepare_ray_workers(ray_parallel())
