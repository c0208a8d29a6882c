"""LoRA adapters in graph mode (strict host graph): SmolLM2 with seeded random adapters
in two slots (max_loras=2). Decode graphs are captured with vLLM's dummy adapters before
any real one is loaded, so they must read the adapter weights and each token's slot as
they are at replay. Every request's greedy tokens equal Hugging Face's on the base model
with that adapter merged into its weights: base-model and adapter requests mixed in one
batch, then a third adapter that takes a slot (weights replaced in place), then the
first adapter again."""

import json

import pytest
from helpers import graph_runs
from helpers.lora_reference import merged_greedy_ids

from vllm_npu_graph.models import build_lora_adapter, cache_dir

pytestmark = pytest.mark.engine
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def adapters(default_model):
    return {
        f"adapter{seed}": str(
            build_lora_adapter(default_model, cache_dir() / "models" / f"lora-smollm2-seed{seed}", seed)
        )
        for seed in (1, 2, 3)
    }


@pytest.fixture(scope="module")
def served(default_model, adapters):
    return graph_runs.run_script("lora_driver.py", default_model, "graph", json.dumps(adapters), str(MAX_TOKENS))


@pytest.fixture(scope="module")
def reference(default_model, adapters):
    from helpers.lora_driver import PROMPTS
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(default_model))
    ids = [tok(p)["input_ids"] for p in PROMPTS]
    return {
        (prompt, name): tokens
        for name, path in [(None, None), *adapters.items()]
        for prompt, tokens in zip(PROMPTS, merged_greedy_ids(default_model, path, ids, MAX_TOKENS))
    }


def test_mixed_batch_of_base_and_two_adapters_equals_merged_hugging_face(served, reference):
    result, _ = served
    for prompt, adapter, tokens in result["batch"]:
        assert tokens == reference[(prompt, adapter)], f"{adapter or 'base'} on {prompt!r}"
    # the adapters change the output: the comparison above could fail
    changed = [(p, a) for p, a, _ in result["batch"] if a and reference[(p, a)] != reference[(p, None)]]
    assert len(changed) >= 4, changed


def test_an_adapter_loaded_into_a_used_slot_serves_its_own_weights(served, reference):
    result, _ = served
    for prompt, adapter, tokens in result["after"]:
        assert tokens == reference[(prompt, adapter)], f"{adapter} on {prompt!r} (after a slot was reused)"


def test_decode_steps_replay_graphs_captured_before_any_adapter_loaded(served):
    _, log = served
    assert "captured 6 graph(s) [1, 2, 4]" in log  # three sizes, with and without active adapters
    summary = next(line for line in log.splitlines() if "eager-fallback summary" in line)
    assert "not captured" not in summary, summary
