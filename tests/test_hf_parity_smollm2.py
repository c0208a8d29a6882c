"""SmolLM2 through the plugin (host target) against Hugging Face transformers.

One engine with chunked prefill (64-token chunks) and prefix caching on serves every
test here, so batching, chunking and prefix hits are all compared to HF's greedy output.
"""

import pytest
from helpers.engines import PROMPTS, greedy_ids, hf_greedy_ids, make_llm, prompts_of_lengths, shutdown_llm

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`

MIXED_LENGTHS = [1, 2, 17, 64, 65, 130, 257, 500]


@pytest.fixture(scope="module")
def llm(default_model):
    engine = make_llm(
        default_model,
        enable_chunked_prefill=True,
        max_num_batched_tokens=64,
        enable_prefix_caching=True,
        block_size=16,
        disable_log_stats=False,
    )
    yield engine
    shutdown_llm(engine)


@pytest.fixture(scope="module")
def tokenizer(default_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(default_model))


@pytest.fixture(scope="module")
def mixed_prompts(default_model):
    return prompts_of_lengths(default_model, MIXED_LENGTHS)


@pytest.fixture(scope="module")
def hf_mixed(default_model, mixed_prompts):
    return hf_greedy_ids(default_model, mixed_prompts)


def test_greedy_matches_transformers_on_8_prompts(llm, default_model, tokenizer):
    prompts = [tokenizer(p)["input_ids"] for p in PROMPTS]
    ours = greedy_ids(llm, prompts, 32)
    ref = hf_greedy_ids(default_model, prompts, 32)
    for prompt, a, b in zip(PROMPTS, ours, ref):
        assert len(a) == 32
        assert a == b, f"mismatch for {prompt!r}:\n ours={a}\n hf  ={b}"


def test_mixed_length_batch_with_chunked_prefill_matches_transformers(llm, mixed_prompts, hf_mixed):
    ours = greedy_ids(llm, mixed_prompts, 32)
    for n, a, b in zip(MIXED_LENGTHS, ours, hf_mixed):
        assert a == b, f"prompt of {n} tokens diverged:\n ours={a}\n hf  ={b}"


def test_one_at_a_time_equals_batched_and_prefix_cache_hits(llm, mixed_prompts, hf_mixed):
    # The previous test left these prompts' blocks in the prefix cache: every request
    # here starts from cached blocks, one request per step.
    hits_before = prefix_cache_hits(llm)
    singles = [greedy_ids(llm, [p], 32)[0] for p in mixed_prompts]
    assert singles == hf_mixed
    assert prefix_cache_hits(llm) - hits_before >= sum(n // 16 * 16 for n in MIXED_LENGTHS) - 16 * len(MIXED_LENGTHS)


def prefix_cache_hits(llm) -> int:
    return int(sum(m.value for m in llm.get_metrics() if m.name == "vllm:prefix_cache_hits"))


def test_shared_prefix_requests_reuse_cached_blocks(llm, mixed_prompts, hf_mixed, default_model):
    base = mixed_prompts[-1]  # 500 tokens
    variants = [base[:300] + base[300 + k : 310 + k] for k in range(4)]
    ref = hf_greedy_ids(default_model, variants, 16)
    hits_before = prefix_cache_hits(llm)
    assert greedy_ids(llm, variants, 16) == ref
    assert prefix_cache_hits(llm) - hits_before >= 4 * 288  # 18 full blocks of the shared 300
