"""Tensor parallelism on the host target: one worker process per rank, collectives over
gloo through the same device communicator HCCL serves on the NPU. Greedy tokens must
equal Hugging Face's (which the parity tests show equal one worker's).

SmolLM2 has 9 query and 3 KV heads, so its smallest split is 3 ranks, not 2; tiny
Qwen3 (4 query / 2 KV heads) at 2 ranks runs in graph mode over Ray
(test_ray_executor.py). Tiny Qwen3-MoE at 2 ranks: tensor parallel
shards each expert's intermediate size (80 -> 40 per rank, padded to 64 by the host
kernel); expert parallel gives each rank 4 of the 8 experts."""

import pytest
from helpers.engines import PROMPTS, greedy_ids, hf_greedy_ids, make_llm, shutdown_llm

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`


@pytest.mark.parametrize("arch, tp, ep", [("smollm2", 3, False), ("qwen3_moe", 2, False), ("qwen3_moe", 2, True)])
def test_tensor_parallel_matches_hf(default_model, tiny_model, arch, tp, ep):
    from transformers import AutoTokenizer

    model = default_model if arch == "smollm2" else tiny_model(arch)
    prompts = [AutoTokenizer.from_pretrained(str(model))(p)["input_ids"] for p in PROMPTS[:4]]
    llm = make_llm(model, tensor_parallel_size=tp, enforce_eager=True, enable_expert_parallel=ep)
    try:
        got = greedy_ids(llm, prompts, 16)
    finally:
        shutdown_llm(llm)
    assert got == hf_greedy_ids(model, prompts, 16)
