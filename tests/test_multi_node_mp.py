"""Multi-node launch with vLLM's own multiprocessing, as two servers would run it: two
`vllm serve` processes here (--nnodes 2 --node-rank 0|1 --master-addr 127.0.0.1, the
follower --headless), pipeline parallel 2, graph mode on both stages.

Each "node" sees one device (VLLM_NPU_GRAPH_HOST_VISIBLE_DEVICES=0, as
ASCEND_RT_VISIBLE_DEVICES=0 would on an NPU server): vLLM places ranks node by node by
the platform's device count. The leader's OpenAI endpoint answers with Hugging Face's
greedy tokens. When the follower dies, the leader's next step fails within vLLM's
VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS and the server answers 5xx, then reports unhealthy
or stops: no hang."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from helpers.engines import PROMPTS, hf_greedy_ids
from helpers.replays import assert_reports_replayed, server_reports

from vllm_npu_graph.processes import stop_process, wait_until_healthy

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`

PORT = 8797
BASE = f"http://127.0.0.1:{PORT}"
MASTER_PORT = 29541
STEP_TIMEOUT_S = 20
LOGS = [Path(os.environ.get("TMPDIR", "/tmp")) / f"vllm_npu_graph_node{rank}.log" for rank in (0, 1)]


@pytest.fixture(scope="module")
def two_nodes(tiny_model):
    model = tiny_model("qwen3")
    vllm = Path(sys.executable).parent / "vllm"
    env = dict(
        os.environ,
        VLLM_NPU_GRAPH_TARGET="host",
        VLLM_NPU_GRAPH_HOST_VISIBLE_DEVICES="0",
        VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS=str(STEP_TIMEOUT_S),
        VLLM_SERVER_DEV_MODE="1",  # /collective_rpc: each stage's replay counts
    )
    common = [
        *("--dtype", "float32", "--max-model-len", "512", "--max-num-seqs", "8"),
        *("--pipeline-parallel-size", "2", "--nnodes", "2"),
        *("--master-addr", "127.0.0.1", "--master-port", str(MASTER_PORT)),
        *("--additional-config", json.dumps({"npu_graph": {"host_kv_cache_gib": 0.125}})),
    ]
    roles = [["--node-rank", "0", "--port", str(PORT)], ["--node-rank", "1", "--headless"]]
    procs = []
    for log_path, role in zip(LOGS, roles):
        with open(log_path, "w") as log:  # each node in its own session, killable as a whole
            procs.append(
                subprocess.Popen(
                    [str(vllm), "serve", str(model), *common, *role],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        wait_until_healthy(BASE, procs[0], timeout_s=600)
        yield model, procs
    finally:
        for proc in reversed(procs):
            stop_process(proc)


def test_the_leader_answers_with_hf_tokens_from_two_graph_mode_stages(two_nodes):
    from transformers import AutoTokenizer

    model, _ = two_nodes
    prompts = [AutoTokenizer.from_pretrained(str(model))(p)["input_ids"] for p in PROMPTS[:3]]
    got = []
    for ids in prompts:
        body = {"model": str(model), "prompt": ids, "max_tokens": 12, "temperature": 0, "ignore_eos": True}
        r = requests.post(f"{BASE}/v1/completions", json={**body, "return_token_ids": True}, timeout=120)
        assert r.status_code == 200, r.text
        got.append(r.json()["choices"][0]["token_ids"])
    assert got == hf_greedy_ids(model, prompts, 12)
    for log in LOGS:  # each node's stage captured its own decoder graphs
        assert re.search(r"npu_graph: captured [1-9]\d* graph\(s\)", log.read_text()), log
    reports = server_reports(BASE)  # the leader reaches both stages' workers
    assert sorted(r["rank"] for r in reports) == [0, 1]
    assert_reports_replayed(reports)


def test_a_dead_follower_fails_the_leader_instead_of_hanging(two_nodes):
    model, procs = two_nodes
    os.killpg(procs[1].pid, signal.SIGKILL)  # the follower server and its worker: a node lost
    procs[1].wait(timeout=30)
    started = time.monotonic()
    body = {"model": str(model), "prompt": "Hello", "max_tokens": 4, "temperature": 0}
    r = requests.post(f"{BASE}/v1/completions", json=body, timeout=STEP_TIMEOUT_S + 60)
    assert r.status_code >= 500, r.text
    assert time.monotonic() - started < STEP_TIMEOUT_S + 60
    try:  # then the server reports unhealthy, or has already shut down after its engine
        assert requests.get(f"{BASE}/health", timeout=10).status_code == 503
    except requests.ConnectionError:
        assert procs[0].wait(timeout=60) is not None
