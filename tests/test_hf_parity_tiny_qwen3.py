"""A tiny random Qwen3 (per-head QK RMSNorm, GQA 4:2) through the plugin vs transformers."""

import pytest
from helpers.engines import PROMPTS, greedy_ids, hf_greedy_ids, make_llm, prompts_of_lengths, shutdown_llm

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`


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


def test_seeded_sampling_across_prefill_chunks(llm, qwen3):
    """A seeded request whose prompt spans several 128-token prefill chunks: vLLM's rewind
    of each discarded chunk's draw raised on the host's CPU generator and killed the
    engine (the soak found it). Its tokens must also not depend on where the chunks fall:
    behind a 127-token prompt it gets one more discarded chunk than alone."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    lead, long = prompts_of_lengths(qwen3, [127, 400])
    seeded = SamplingParams(temperature=1.0, seed=1234, max_tokens=16, ignore_eos=True)
    alone = llm.generate([TokensPrompt(prompt_token_ids=long)], seeded, use_tqdm=False)
    behind = llm.generate(
        [TokensPrompt(prompt_token_ids=lead), TokensPrompt(prompt_token_ids=long)],
        [SamplingParams(temperature=0.0, max_tokens=4), seeded],
        use_tqdm=False,
    )
    other_seed = llm.generate(
        [TokensPrompt(prompt_token_ids=long)],
        SamplingParams(temperature=1.0, seed=4321, max_tokens=16, ignore_eos=True),
        use_tqdm=False,
    )
    tokens = list(alone[0].outputs[0].token_ids)
    assert list(behind[1].outputs[0].token_ids) == tokens
    assert list(other_seed[0].outputs[0].token_ids) != tokens  # the seed does steer sampling
