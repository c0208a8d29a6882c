"""Our model runner: vLLM's GPUModelRunner with the device calls sent to the target."""

import torch
from vllm.v1.worker.gpu_model_runner import GPUModelRunner

from vllm_npu_graph.targets import get_target


class NPUGraphModelRunner(GPUModelRunner):
    def __init__(self, vllm_config, device: torch.device):
        self.target = get_target()
        super().__init__(vllm_config, device)

    def _sync_device(self) -> None:
        self.target.synchronize()

    def _to_list(self, sampled_token_ids: torch.Tensor) -> list[list[int]]:
        # vLLM copies through a pinned buffer + CUDA event; the target syncs instead.
        self.target.synchronize()
        return sampled_token_ids.tolist()
