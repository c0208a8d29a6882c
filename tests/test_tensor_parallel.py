"""Tensor parallelism on the host target: two worker processes, our gloo communicator
(the contract HCCL fills on the NPU), same greedy tokens as one worker."""

from conftest import PROMPTS, greedy_ids, make_llm, shutdown_llm


def test_tp2_matches_tp1(tiny_model):
    from transformers import AutoTokenizer

    model = tiny_model("qwen3")  # 4 query / 2 KV heads split evenly over 2 ranks
    prompts = [AutoTokenizer.from_pretrained(str(model))(p)["input_ids"] for p in PROMPTS[:4]]
    results = {}
    for tp in (1, 2):
        llm = make_llm(model, tensor_parallel_size=tp, enforce_eager=True)
        results[tp] = greedy_ids(llm, prompts, 12)
        shutdown_llm(llm)
    assert results[2] == results[1]
