"""vLLM's Ray executor (V2) on our platform, host target, one local Ray cluster whose
node declares two NPU resources: tiny Qwen3 at TP=2 and SmolLM2 at PP=2, in graph mode.
Every rank of every stage compiles and captures its own decoder graph, and greedy
tokens equal Hugging Face's. The cluster starts without our variables (as `ray start`
on a node would), so each worker actor finds the target only in its runtime env."""

import pytest
from helpers import ray_cluster
from helpers.engines import hf_greedy_ids

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`


@pytest.fixture(scope="module")
def one_node():
    with ray_cluster.started(nodes=1):
        yield


@pytest.mark.parametrize("arch, tp, pp", [("qwen3", 2, 1), ("smollm2", 1, 2)])
def test_ray_executor_serves_in_graph_mode_on_every_rank(one_node, default_model, tiny_model, arch, tp, pp):
    model = default_model if arch == "smollm2" else tiny_model(arch)
    prompts, got, reports = ray_cluster.engine_tokens(model, tensor_parallel_size=tp, pipeline_parallel_size=pp)
    assert sorted(r["rank"] for r in reports) == [0, 1]
    for report in reports:  # each rank compiled its decoder and captured its decode graphs
        assert report["compile"] and report["capture"], report
    assert got == hf_greedy_ids(model, prompts, 16)
