"""Speculative decoding in graph mode (strict host graph): greedy tokens with n-gram
and with draft-model speculation equal Hugging Face's without speculation, at every
captured batch size; every speculative step replays a graph of 1 + k tokens per
request (drafts padded to k); acceptance is reported through vLLM's counters."""

import json
import re

import pytest
from helpers import graph_runs
from helpers.engines import hf_greedy_ids
from helpers.spec_decode_driver import prompt_ids

pytestmark = pytest.mark.engine
MAX_TOKENS = 16
NGRAM = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3, "prompt_lookup_min": 1}
# make_llm's max_num_seqs 16: the kept graph sizes, in requests of 4 tokens
NGRAM_BATCHES = [1, 2, 4, 6, 8, 10, 12, 14, 16]


def run(model, spec: dict, batches) -> tuple[dict, str]:
    return graph_runs.run_script(
        "spec_decode_driver.py", model, "graph", json.dumps(spec), ",".join(map(str, batches)), str(MAX_TOKENS)
    )


@pytest.fixture(scope="module")
def hf(default_model):
    return hf_greedy_ids(default_model, prompt_ids(str(default_model), max(NGRAM_BATCHES)), MAX_TOKENS)


@pytest.fixture(scope="module")
def ngram(default_model):
    return run(default_model, NGRAM, NGRAM_BATCHES)


def test_ngram_tokens_equal_hugging_face_at_every_captured_size(ngram, hf):
    result, log = ngram
    assert "captured 9 graph(s) [4, 8, 16, 24, 32, 40, 48, 56, 64]" in log
    for n in NGRAM_BATCHES:
        assert result["tokens"][str(n)] == hf[:n], f"batch {n} diverged from Hugging Face"


def test_ngram_steps_replay_graphs_and_acceptance_is_counted(ngram):
    result, log = ngram
    summary = next(line for line in log.splitlines() if "eager-fallback summary" in line)
    assert "speculative step" not in summary and "not captured" not in summary, summary
    assert "a prefill or mixed batch" in summary  # prompts only
    padded = int(re.search(r"speculative decoding: (\d+) draft token\(s\) padded", log).group(1))
    counters = result["counters"]
    assert 0 < counters["num_accepted_tokens"] < counters["num_draft_tokens"]
    assert padded < counters["num_draft_tokens"]  # n-gram hits on these prompts, not padding alone


def test_draft_model_equal_to_the_target_is_accepted_and_exact(tiny_model):
    """A tiny seeded Llama as its own draft (k=2): the draft model's forward is right
    when its drafts are accepted, and the tokens stay Hugging Face's."""
    model = tiny_model("llama")
    spec = {"method": "draft_model", "model": str(model), "num_speculative_tokens": 2}
    result, log = run(model, spec, [3])
    assert result["tokens"]["3"] == hf_greedy_ids(model, prompt_ids(str(model), 3), MAX_TOKENS)
    counters = result["counters"]
    assert counters["num_accepted_tokens"] >= 0.9 * counters["num_draft_tokens"] > 0, counters
    assert "captured 9 graph(s) [3, 6, 9, 12, 18, 24, 33, 42, 48]" in log
