"""vLLM's Ray executor (V2) on our platform, host target. The clusters start without our
variables (as `ray start` on a node would), so each worker actor finds the target only
in its runtime env.

One local node declaring two NPU resources: tiny Qwen3 at TP=2 in graph mode (every rank
compiles and captures its own decoder graph) and SmolLM2 at PP=2, eager. Then two Ray
nodes (ray.cluster_utils on this machine, one NPU resource each): the two pipeline
stages of tiny Qwen3 land on different nodes, talk over TCP message queues and gloo as
they would between servers, each in graph mode. Greedy tokens equal Hugging Face's.
One cluster at a time: a process joins one Ray cluster."""

import pytest
from helpers import ray_cluster
from helpers.engines import hf_greedy_ids

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`


class TestOneNode:
    @pytest.fixture(scope="class", autouse=True)
    def one_node(self):
        with ray_cluster.started(nodes=1):
            yield

    def test_tensor_parallel_in_graph_mode_on_every_rank(self, tiny_model):
        model = tiny_model("qwen3")
        prompts, got, reports = ray_cluster.engine_tokens(model, tensor_parallel_size=2)
        assert sorted(r["rank"] for r in reports) == [0, 1]
        for report in reports:  # each rank compiled its decoder and captured its decode graphs
            assert report["compile"] and report["capture"], report
        assert got == hf_greedy_ids(model, prompts, 16)

    def test_pipeline_parallel(self, default_model):
        prompts, got, reports = ray_cluster.engine_tokens(default_model, pipeline_parallel_size=2, enforce_eager=True)
        assert sorted(r["rank"] for r in reports) == [0, 1]
        assert got == hf_greedy_ids(default_model, prompts, 16)


def test_pipeline_stages_on_two_ray_nodes_in_graph_mode(tiny_model):
    import ray

    model = tiny_model("qwen3")
    with ray_cluster.started(nodes=2):
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        prompts, got, reports = ray_cluster.engine_tokens(model, pipeline_parallel_size=2)
    assert all(r["compile"] and r["capture"] for r in reports), reports
    assert got == hf_greedy_ids(model, prompts, 16)
