"""Tiny seeded Mistral in graph and in eager mode, and Qwen2 eagerly (the dense runs no
other engine test makes; Qwen2 in graph mode: test_passes_engine.py): greedy tokens equal
Hugging Face's at captured sizes, padded ones and above the largest; the graph claim by
counted replays."""

import pytest
from helpers import graph_runs
from helpers.engines import hf_greedy_ids
from helpers.graph_mode_driver import prompts_for
from helpers.replays import PREFILL, assert_graph_mode

pytestmark = pytest.mark.engine
BATCHES = "1,3,16,24"


ARCHS = {"mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}
MODES = {"mistral": ("graph", "eager"), "qwen2": ("eager",)}


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_tokens_equal_hugging_face(arch, tiny_model):
    model = tiny_model(arch)
    hf = hf_greedy_ids(model, prompts_for(str(model), "24"), max_tokens=12)
    assert len({tuple(t) for t in hf}) > 12, "degenerate model: continuations coincide"
    for mode in MODES[arch]:
        tokens, log = graph_runs.run_driver(model, mode, BATCHES)
        for spec in BATCHES.split(","):
            assert tokens[spec] == hf[: int(spec)], f"{arch} {mode}, batch {spec} diverged from Hugging Face"
        assert f"Resolved architecture: {ARCHS[arch]}" in log
        if mode == "graph":
            assert_graph_mode(log, allowed=(PREFILL, "decode batch of more than 16"))
