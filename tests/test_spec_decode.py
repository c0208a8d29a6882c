"""Speculative decoding in graph mode (strict host graph): greedy tokens with n-gram
and with draft-model speculation equal Hugging Face's without speculation, at every
captured batch size; every speculative step replays a graph of 1 + k tokens per
request (drafts padded to k), counted; acceptance is reported through vLLM's counters.
Sampled continuations (temperature 1, and 0.7 + top-k 20) follow the target model's
own probabilities with n-gram speculation in graph and in eager mode and with a draft
model (helpers/sampling_stats.py): rejection sampling keeps the distribution."""

import json
import re

import pytest
from helpers import graph_runs, sampling_stats
from helpers.engines import hf_greedy_ids
from helpers.replays import assert_graph_mode, coverage
from helpers.spec_decode_driver import prompt_ids

pytestmark = pytest.mark.engine
MAX_TOKENS = 16
NGRAM = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3, "prompt_lookup_min": 1}
# make_llm's max_num_seqs 16: the kept graph sizes, in requests of 4 tokens
NGRAM_BATCHES = [1, 2, 4, 6, 8, 10, 12, 14, 16]


def run(model, spec: dict, batches, mode: str = "graph") -> tuple[dict, str]:
    """Greedy batches, then the sampling harness's continuations, in one engine."""
    return graph_runs.run_script(
        "spec_decode_driver.py", model, mode, json.dumps(spec), ",".join(map(str, batches)), str(MAX_TOKENS), "sample"
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
    (rank,) = assert_graph_mode(log)  # no speculative step fell back to eager
    padded = int(re.search(r"speculative decoding: (\d+) draft token\(s\) padded", log).group(1))
    counters = result["counters"]
    assert 0 < counters["num_accepted_tokens"] < counters["num_draft_tokens"]
    assert padded < result["counters_with_samples"]["num_draft_tokens"]  # n-gram hits, not padding alone
    assert rank["tokens"] >= 4 * rank["steps"] // 2  # speculative steps carry 1 + k tokens a request


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_ngram_sampling_follows_the_model(mode, request, default_model):
    result, log = request.getfixturevalue("ngram") if mode == "graph" else run(default_model, NGRAM, [], "eager")
    stats = sampling_stats.check(sampling_stats.load_hf(default_model), result["samples"])
    before, after = result["counters"].get("num_accepted_tokens", 0), result["counters_with_samples"]
    print(f"n-gram {mode}: {stats}; counters {after}")
    sampling_stats.assert_faithful(stats)
    assert after["num_accepted_tokens"] > before  # accepted drafts are among the samples
    if mode == "eager":
        assert coverage(log)[0]["steps"] == 0


@pytest.fixture(scope="module")
def draft_model_run(tiny_model):
    model = tiny_model("llama")
    spec = {"method": "draft_model", "model": str(model), "num_speculative_tokens": 2}
    return model, *run(model, spec, [3, 16])


def test_draft_model_equal_to_the_target_is_accepted_and_exact(draft_model_run):
    """A tiny seeded Llama as its own draft (k=2): the draft model's forward is right
    when its drafts are accepted, and the tokens stay Hugging Face's, at two sizes."""
    model, result, log = draft_model_run
    hf = hf_greedy_ids(model, prompt_ids(str(model), 16), MAX_TOKENS)
    assert result["tokens"]["3"] == hf[:3] and result["tokens"]["16"] == hf
    counters = result["counters"]
    assert counters["num_accepted_tokens"] >= 0.9 * counters["num_draft_tokens"] > 0, counters
    assert "captured 9 graph(s) [3, 6, 9, 12, 18, 24, 33, 42, 48]" in log
    assert_graph_mode(log)


def test_draft_model_sampling_follows_the_target(draft_model_run):
    model, result, _ = draft_model_run
    stats = sampling_stats.check(sampling_stats.load_hf(model), result["samples"])
    print(f"draft model: {stats}")
    sampling_stats.assert_faithful(stats)
