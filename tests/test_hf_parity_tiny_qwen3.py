"""A tiny random Qwen3 (per-head QK RMSNorm, GQA 4:2) through the plugin vs transformers."""

import pytest
from conftest import PROMPTS, greedy_ids, hf_greedy_ids, make_llm, prompts_of_lengths, shutdown_llm


@pytest.fixture(scope="module")
def qwen3(tiny_model):
    return tiny_model("qwen3")


@pytest.fixture(scope="module")
def llm(qwen3):
    engine = make_llm(qwen3, max_num_batched_tokens=128, enable_chunked_prefill=True)
    yield engine
    shutdown_llm(engine)


def test_tiny_qwen3_greedy_matches_transformers(llm, qwen3):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(qwen3))
    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    prompts += prompts_of_lengths(qwen3, [1, 150, 400])
    ours = greedy_ids(llm, prompts, 32)
    ref = hf_greedy_ids(qwen3, prompts, 32)
    assert len({tuple(o) for o in ref}) == len(ref), "degenerate model: continuations coincide"
    for i, (a, b) in enumerate(zip(ours, ref)):
        assert a == b, f"prompt {i} diverged:\n ours={a}\n hf  ={b}"
