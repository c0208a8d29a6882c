"""vLLM's Ray executor (V2) on our platform, host target. The clusters start without our
variables (as `ray start` on a node would), so each worker actor finds the target only
in its runtime env.

One local node declaring two NPU resources: tiny Qwen3 at TP=2 and SmolLM2 at PP=2, in
graph mode (every rank compiles and captures its own decoder graph, and replays it:
counted per rank); TP=2's sampled continuations follow the model's probabilities. Then
two Ray nodes (ray.cluster_utils on this machine, one NPU resource each): the two
pipeline stages of tiny Qwen3 land on different nodes, talk over TCP message queues and
gloo as they would between servers, each in graph mode. Greedy tokens equal Hugging
Face's. One cluster at a time: a process joins one Ray cluster."""

import pytest
from helpers import ray_cluster, sampling_stats
from helpers.engines import hf_greedy_ids
from helpers.replays import assert_reports_replayed

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`


class TestOneNode:
    @pytest.fixture(scope="class", autouse=True)
    def one_node(self):
        with ray_cluster.started(nodes=1):
            yield

    def test_tensor_parallel_in_graph_mode_on_every_rank(self, tiny_model):
        model = tiny_model("qwen3")
        prompts, got, reports, samples = ray_cluster.engine_tokens(model, sample=True, tensor_parallel_size=2)
        assert sorted(r["rank"] for r in reports) == [0, 1]
        for report in reports:  # each rank compiled its decoder and captured its decode graphs
            assert report["compile"] and all(c["captured"] for c in report["capture"]), report
        assert_reports_replayed(reports)
        assert got == hf_greedy_ids(model, prompts, 16)
        stats = sampling_stats.check(sampling_stats.load_hf(model), samples)
        print(f"TP=2: {stats}")
        sampling_stats.assert_faithful(stats)

    def test_pipeline_parallel_in_graph_mode_on_every_stage(self, default_model):
        prompts, got, reports, _ = ray_cluster.engine_tokens(default_model, pipeline_parallel_size=2)
        assert sorted(r["rank"] for r in reports) == [0, 1]
        assert_reports_replayed(reports)
        assert got == hf_greedy_ids(default_model, prompts, 16)


def test_pipeline_stages_on_two_ray_nodes_in_graph_mode(tiny_model):
    import ray

    model = tiny_model("qwen3")
    with ray_cluster.started(nodes=2):
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        prompts, got, reports, _ = ray_cluster.engine_tokens(model, pipeline_parallel_size=2)
    assert all(r["compile"] and all(c["captured"] for c in r["capture"]) for r in reports), reports
    assert_reports_replayed(reports)
    assert got == hf_greedy_ids(model, prompts, 16)
