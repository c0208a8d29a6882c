"""vLLM's sampler with the target's greedy argmax. vLLM's sampler calls its CPU build's
`_C::greedy_argmax` only on its own CPU platform and torch's argmax elsewhere; on the
host target that is the same kernel the peer uses, 3.5x faster than torch's argmax over
16 x 49k float32 logits here (0.16 against 0.57 ms)."""

from vllm.v1.sample.sampler import Sampler

from vllm_npu_graph.ops import kernel_choice


class NPUGraphSampler(Sampler):
    @staticmethod
    def greedy_sample(logits):
        return kernel_choice.impls["greedy_argmax"](logits)
