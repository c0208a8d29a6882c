"""Mixture-of-experts models through the plugin (host target, strict host graph):
greedy tokens in graph mode == eager == Hugging Face for Qwen3-MoE (top-k renormalised),
Mixtral and Qwen2-MoE (shared expert with its sigmoid gate), every MoE layer inside the
one compiled decoder graph. Batches above the largest captured size and a 1,490-token
context with chunked prefill beside decodes included; padded rows in every captured
batch but the exact sizes. Layer 0 of the tiny Qwen3-MoE has a zero router (models.py):
every token goes to the same two experts there and six experts get none."""

import pytest
from helpers import graph_runs, sampling_stats
from helpers.engines import hf_greedy_ids
from helpers.graph_mode_driver import prompts_for
from helpers.replays import PREFILL, assert_graph_mode

pytestmark = pytest.mark.engine
BATCHES = "1,3,8,13,24,long"
LAYERS = 2


@pytest.fixture(scope="module", params=["qwen3_moe", "mixtral", "qwen2_moe"])
def runs(request, tiny_model):
    model = tiny_model(request.param)
    graph, graph_log = graph_runs.run_driver(model, "graph", BATCHES + ",sample")
    eager, _ = graph_runs.run_driver(model, "eager", BATCHES + ",sample")
    hf = {spec: hf_greedy_ids(model, prompts_for(str(model), spec), max_tokens=12) for spec in ("24", "long")}
    return graph, graph_log, eager, hf


def test_graph_tokens_equal_eager_and_hugging_face(runs):
    graph, _, eager, hf = runs
    assert len({tuple(t) for t in hf["24"]}) > 12, "degenerate model: continuations coincide"
    for spec in BATCHES.split(","):
        expected = hf["long"] if spec == "long" else hf["24"][: int(spec)]
        assert eager[spec] == expected, f"eager batch {spec} diverged from Hugging Face"
        assert graph[spec] == expected, f"graph batch {spec} diverged from Hugging Face"


def test_every_moe_layer_is_inside_the_one_decoder_graph(runs):
    _, log, _, _ = runs
    compiled = [line for line in log.splitlines() if "compiled the whole decoder as one graph" in line]
    assert compiled, log[-3000:]
    assert all(f"{LAYERS} attention ops, {LAYERS} kv-cache writes, {LAYERS} MoE layers" in c for c in compiled)
    assert "captured 5 graph(s) [1, 2, 4, 8, 16]" in log
    assert_graph_mode(log, allowed=(PREFILL, "decode batch of more than 16"))
    assert "GraphFaithfulnessError" not in log and "Traceback" not in log


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_sampled_continuations_follow_the_model(runs, mode, request):
    graph, _, eager, _ = runs
    model = request.getfixturevalue("tiny_model")(request.node.callspec.params["runs"])
    stats = sampling_stats.check(sampling_stats.load_hf(model), (graph if mode == "graph" else eager)["sample"])
    print(f"{model.name} {mode}: {stats}")
    sampling_stats.assert_faithful(stats)
