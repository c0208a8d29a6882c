"""vLLM's Ray executor (V2) on our platform, host target, one local Ray cluster whose
node declares two NPU resources: tiny Qwen3 at TP=2 in graph mode (every rank compiles
and captures its own decoder graph) and SmolLM2 at PP=2, eager (pipeline stages in graph
mode: test_ray_two_nodes.py and test_multi_node_mp.py, on tiny Qwen3, whose compile is
a fraction of SmolLM2's). Greedy tokens equal Hugging Face's. The cluster starts without our variables (as `ray start`
on a node would), so each worker actor finds the target only in its runtime env."""

import pytest
from helpers import ray_cluster
from helpers.engines import hf_greedy_ids

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`


@pytest.fixture(scope="module")
def one_node():
    with ray_cluster.started(nodes=1):
        yield


def test_tensor_parallel_over_ray_in_graph_mode_on_every_rank(one_node, tiny_model):
    model = tiny_model("qwen3")
    prompts, got, reports = ray_cluster.engine_tokens(model, tensor_parallel_size=2)
    assert sorted(r["rank"] for r in reports) == [0, 1]
    for report in reports:  # each rank compiled its decoder and captured its decode graphs
        assert report["compile"] and report["capture"], report
    assert got == hf_greedy_ids(model, prompts, 16)


def test_pipeline_parallel_over_ray(one_node, default_model):
    prompts, got, reports = ray_cluster.engine_tokens(default_model, pipeline_parallel_size=2, enforce_eager=True)
    assert sorted(r["rank"] for r in reports) == [0, 1]
    assert got == hf_greedy_ids(default_model, prompts, 16)
