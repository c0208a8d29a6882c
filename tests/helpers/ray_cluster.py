"""Ray clusters on this machine for the executor tests, started as a user's `ray start`
would start them: without our variables in their environment, so a worker actor gets
the target only through the runtime env our platform adds (ray_env.py)."""

import os
from contextlib import contextmanager

from helpers.engines import PROMPTS, greedy_ids, make_llm, shutdown_llm
from helpers.sampling_runs import sampling_run


@contextmanager
def started(nodes: int):
    """One node with two NPU resources, or `nodes` nodes with one each (ray.cluster_utils);
    the engine core process joins it through RAY_ADDRESS."""
    import ray
    from ray.cluster_utils import Cluster

    ours = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith("VLLM_NPU_GRAPH_")}
    cluster = None
    try:
        if nodes == 1:
            ray.init(resources={"NPU": 2}, num_cpus=2, include_dashboard=False)
            address = ray.get_runtime_context().gcs_address
        else:
            node = {"num_cpus": 1, "resources": {"NPU": 1}}
            cluster = Cluster(initialize_head=True, head_node_args=node)
            for _ in range(nodes - 1):
                cluster.add_node(**node)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address)
            address = cluster.address
    finally:
        os.environ.update(ours)
    os.environ["RAY_ADDRESS"] = address
    try:
        yield
    finally:
        del os.environ["RAY_ADDRESS"]
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


def engine_tokens(model, sample: bool = False, **parallel):
    """Greedy tokens through the Ray executor, each rank's report after them (start-up
    and replays), and with `sample` the sampling harness's continuations."""
    from transformers import AutoTokenizer

    prompts = [AutoTokenizer.from_pretrained(str(model))(p)["input_ids"] for p in PROMPTS[:4]]
    llm = make_llm(model, distributed_executor_backend="ray", **parallel)
    try:
        got = greedy_ids(llm, prompts, 16)
        samples = sampling_run(llm, model, single_step=False) if sample else None
        reports = llm.collective_rpc("warmup_report")
    finally:
        shutdown_llm(llm)
    return prompts, got, reports, samples
