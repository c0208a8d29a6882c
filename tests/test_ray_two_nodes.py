"""Pipeline parallel across two Ray nodes (ray.cluster_utils on this machine, one NPU
resource each): the two stages land on different nodes, talk over TCP message queues
and gloo as they would between servers, and greedy tokens equal Hugging Face's."""

import pytest
from helpers import ray_cluster
from helpers.engines import hf_greedy_ids

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`


def test_pipeline_stages_on_two_ray_nodes_match_hf(tiny_model):
    import ray

    model = tiny_model("qwen3")
    with ray_cluster.started(nodes=2):
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        prompts, got, reports = ray_cluster.engine_tokens(model, pipeline_parallel_size=2)
    assert all(r["compile"] and r["capture"] for r in reports), reports
    assert got == hf_greedy_ids(model, prompts, 16)
