"""Which of its node's devices a worker binds, decided as vLLM's GPU worker does.

Where vLLM (per DP rank, for out-of-tree platforms) or Ray (per node) assigned physical
devices, the local rank indexes those: they are already this DP rank's share. Otherwise,
on one node under vLLM's own launcher, data-parallel rank d's workers come after the
workers of the DP ranks before it (local rank + d x TP x PP x PCP). The visible-devices
variable (ASCEND_RT_VISIBLE_DEVICES on the NPU) then maps the device to the ordinal this
process sees.
"""

from vllm.platforms.interface import set_assigned_physical_gpu_ids


def dp_shifted_local_rank(local_rank: int, parallel_config) -> int:
    pc = parallel_config
    if pc.assigned_physical_gpu_ids is not None:
        return local_rank
    own_launcher = pc.distributed_executor_backend not in ("ray", "external_launcher")
    if not (own_launcher and pc.data_parallel_backend != "ray" and pc.nnodes_within_dp == 1):
        return local_rank
    dp_local = pc.data_parallel_rank_local if pc.data_parallel_rank_local is not None else pc.data_parallel_index
    ranks_per_dp = pc.pipeline_parallel_size * pc.prefill_context_parallel_size * pc.tensor_parallel_size
    return local_rank + dp_local * ranks_per_dp


def device_index(local_rank: int, parallel_config, platform) -> int:
    """The device ordinal this process uses for the (DP-shifted) local rank."""
    assigned = parallel_config.assigned_physical_gpu_ids
    if assigned is not None:
        set_assigned_physical_gpu_ids(assigned)
        if local_rank >= len(assigned):
            raise ValueError(f"local rank {local_rank} has no device among the assigned ones {assigned}")
    return platform.logical_device_id_to_visible_device_id(local_rank)
