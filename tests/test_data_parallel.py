"""Data parallel on one node: `vllm serve --data-parallel-size 2` runs two engines behind
one API server. vLLM hands each DP rank of an out-of-tree platform its own share of
devices; our worker binds within that share (device_binding.py). Both engines serve
(vLLM's per-engine metrics), each in graph mode (its workers' counted replays), and
greedy tokens equal Hugging Face's."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from helpers.engines import PROMPTS, hf_greedy_ids
from helpers.replays import assert_graph_mode

from vllm_npu_graph.processes import stop_process, wait_until_healthy

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`

PORT = 8798
BASE = f"http://127.0.0.1:{PORT}"
LOG = Path(os.environ.get("TMPDIR", "/tmp")) / "vllm_npu_graph_dp_test.log"


@pytest.fixture(scope="module")
def dp_server(tiny_model):
    model = tiny_model("qwen3")
    cmd = [
        str(Path(sys.executable).parent / "vllm"),
        *("serve", str(model), "--port", str(PORT), "--data-parallel-size", "2"),
        *("--shutdown-timeout", "30"),  # a stop waits for the engines: each logs its graph coverage
        *("--dtype", "float32", "--max-model-len", "512", "--max-num-seqs", "8"),
        *("--additional-config", json.dumps({"npu_graph": {"host_kv_cache_gib": 0.125}})),
    ]
    with open(LOG, "w") as log:
        proc = subprocess.Popen(cmd, env=dict(os.environ, VLLM_NPU_GRAPH_TARGET="host"), stdout=log, stderr=log)
    try:
        wait_until_healthy(BASE, proc, timeout_s=600)
        yield model, proc
    finally:
        stop_process(proc)


def generated_tokens_per_engine() -> dict[str, float]:
    counts = {}
    for line in requests.get(f"{BASE}/metrics", timeout=10).text.splitlines():
        if line.startswith("vllm:generation_tokens_total{"):
            engine = line.split('engine="')[1].split('"')[0]
            counts[engine] = float(line.rsplit(" ", 1)[1])
    return counts


def test_both_engines_serve_with_hf_tokens(dp_server):
    from transformers import AutoTokenizer

    model, proc = dp_server
    prompts = [AutoTokenizer.from_pretrained(str(model))(p)["input_ids"] for p in PROMPTS[:6]]

    def complete(ids):
        body = {"model": str(model), "prompt": ids, "max_tokens": 8, "temperature": 0, "ignore_eos": True}
        r = requests.post(f"{BASE}/v1/completions", json={**body, "return_token_ids": True}, timeout=120)
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["token_ids"]

    with ThreadPoolExecutor(len(prompts)) as pool:
        got = list(pool.map(complete, prompts))
    assert got == hf_greedy_ids(model, prompts, 8)
    counts = generated_tokens_per_engine()
    assert sorted(counts) == ["0", "1"] and all(n > 0 for n in counts.values()), counts
    stop_process(proc)  # each engine logs its coverage at shutdown (vLLM's RPC reaches only the first)
    assert_graph_mode(LOG.read_text(), ranks=2)
