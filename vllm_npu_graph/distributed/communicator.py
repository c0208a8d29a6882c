"""Device communicator of the host target: tensor-parallel collectives over gloo.

It fills the same contract HCCL fills on the NPU (all-reduce, all-gather,
reduce-scatter on the device group) with operations gloo implements.
"""

import torch
import torch.distributed as dist
from vllm.distributed.device_communicators.base_device_communicator import DeviceCommunicatorBase


class HostCommunicator(DeviceCommunicatorBase):
    # all_reduce: the base class's dist.all_reduce on the device group works with gloo.

    def all_gather(self, input_: torch.Tensor, dim: int = -1) -> torch.Tensor:
        parts = [torch.empty_like(input_) for _ in range(self.world_size)]
        dist.all_gather(parts, input_.contiguous(), group=self.device_group)
        return torch.cat(parts, dim=dim)

    def reduce_scatter(self, input_: torch.Tensor, dim: int = -1) -> torch.Tensor:
        if self.world_size == 1:
            return input_
        summed = input_.clone()
        dist.all_reduce(summed, group=self.device_group)
        return summed.chunk(self.world_size, dim=dim)[self.rank_in_group].contiguous()
