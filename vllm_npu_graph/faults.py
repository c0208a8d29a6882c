"""Fault injection, for operators rehearsing failures and for tests: a capture that
fails or runs out of memory, a decoder compile that fails, a model step that raises.

The plan is read from the environment once per process (envs.py: the FAIL_* variables);
the runner, the graph wrapper and the compiler each take it when they are built, so no
step reads a variable.
"""

import functools
from dataclasses import dataclass

import torch

from vllm_npu_graph import envs


@dataclass(frozen=True)
class FaultPlan:
    capture_sizes: frozenset[int] = frozenset()  # sizes whose capture fails
    capture_oom_from: int | None = None  # sizes from this one up run out of memory at capture
    compile: bool = False  # compiling the decoder fails
    step: int = 0  # the N-th model step raises (0: never)

    def capture_failure(self, num_tokens: int) -> Exception | None:
        """The memory a capture needs grows with its size, so an injected limit hits every
        larger size too."""
        if self.capture_oom_from is not None and num_tokens >= self.capture_oom_from:
            return torch.OutOfMemoryError(
                f"out of memory injected by {envs.FAIL_CAPTURE_SIZES}=oom:{self.capture_oom_from}"
            )
        if num_tokens in self.capture_sizes:
            return RuntimeError(f"failure injected by {envs.FAIL_CAPTURE_SIZES}")
        return None

    def compile_failure(self) -> Exception | None:
        return RuntimeError(f"failure injected by {envs.FAIL_COMPILE}") if self.compile else None

    def step_failure(self, step: int) -> Exception | None:
        if self.step and step == self.step:
            return RuntimeError(f"failure injected by {envs.FAIL_STEP}={self.step} in model step {step}")
        return None


@functools.cache
def plan() -> FaultPlan:
    sizes, oom_from = envs.read(envs.FAIL_CAPTURE_SIZES)
    return FaultPlan(sizes, oom_from, envs.read(envs.FAIL_COMPILE), envs.read(envs.FAIL_STEP))
