"""SmolLM2 through the plugin (host target) against Hugging Face transformers.

One graph-mode engine with chunked prefill (64-token chunks) and prefix caching on
serves most tests here, so batching, chunking and prefix hits are all compared to HF's
greedy output; an eager engine beside it is checked the same way. Both are checked by
sampling statistics against the model's own probabilities (helpers/sampling_stats.py),
and the graph engine's claim by its counted replays.
"""

import pytest
from helpers import sampling_stats
from helpers.engines import PROMPTS, greedy_ids, hf_greedy_ids, make_llm, prompts_of_lengths, shutdown_llm
from helpers.replays import assert_reports_replayed
from helpers.sampling_runs import sampling_run

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
def eager_llm(default_model):
    engine = make_llm(default_model, enforce_eager=True)
    yield engine
    shutdown_llm(engine)


@pytest.fixture(scope="module")
def hf_model(default_model):
    return sampling_stats.load_hf(default_model)


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


@pytest.fixture(scope="module")
def hf_prompts(default_model, tokenizer):
    prompts = [tokenizer(p)["input_ids"] for p in PROMPTS]
    return prompts, hf_greedy_ids(default_model, prompts, 32)


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_greedy_matches_transformers_on_8_prompts(mode, request, hf_prompts):
    engine = request.getfixturevalue("llm" if mode == "graph" else "eager_llm")
    prompts, ref = hf_prompts
    ours = greedy_ids(engine, prompts, 32)
    for prompt, a, b in zip(PROMPTS, ours, ref):
        assert len(a) == 32
        assert a == b, f"mismatch for {prompt!r}:\n ours={a}\n hf  ={b}"


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_sampled_tokens_follow_the_model(mode, request, default_model, hf_model):
    """Whole continuations (decode steps: graphs in graph mode) at temperature 1 and 0.7
    + top-k 20; in eager mode also temperature, top-k, top-p, min-p and repetition
    penalty on a first token (a prefill step's sampler, eager in both modes)."""
    engine = request.getfixturevalue("llm" if mode == "graph" else "eager_llm")
    samples = sampling_run(engine, default_model, single_step=mode == "eager", both_cases=True)
    result = sampling_stats.check(hf_model, samples)
    print(f"SmolLM2 {mode}: {result}")
    sampling_stats.assert_faithful(result)
    if mode == "graph":
        assert_reports_replayed(engine.collective_rpc("warmup_report"))


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
