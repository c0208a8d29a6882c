"""Graph mode (compiled whole decoder + one captured decode graph per padded size,
under the strict host graph) gives the same greedy tokens as eager mode and as Hugging
Face, and every step it can't serve runs eagerly with a logged reason. Size 4's capture
is made to fail on purpose."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import hf_greedy_ids
from graph_mode_driver import prompts_for

HERE = Path(__file__).parent
FAILED_SIZE = 4
# 24: above the largest captured size; long: contexts up to 1,490 tokens in one captured size
BATCHES = "1,2,3,5,8,13,16,24,long"


def run_driver(model, mode: str, batches: str = BATCHES, max_tokens: int = 12) -> tuple[dict, str]:
    # A fresh compile cache of our own: the checks read the compile's log lines, which a
    # warm cache (an earlier run of the same code) would replace by a load.
    env = dict(
        os.environ,
        VLLM_NPU_GRAPH_TARGET="host",
        VLLM_NPU_GRAPH_FAIL_CAPTURE_SIZES=str(FAILED_SIZE),
        VLLM_NPU_GRAPH_COMPILE_CACHE_DIR=tempfile.mkdtemp(prefix="graph_mode_compile_cache_"),
        PYTHONPATH=str(HERE),
    )
    cmd = [sys.executable, str(HERE / "graph_mode_driver.py"), str(model), mode, batches, str(max_tokens)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), log


@pytest.fixture(scope="module", params=["tiny-qwen3", "smollm2"])
def runs(request, tiny_model, default_model):
    model = tiny_model("qwen3") if request.param == "tiny-qwen3" else default_model
    layers = 2 if request.param == "tiny-qwen3" else 30
    graph, graph_log = run_driver(model, "graph")
    eager, _ = run_driver(model, "eager")
    hf = {spec: hf_greedy_ids(model, prompts_for(str(model), spec), max_tokens=12) for spec in ("24", "long")}
    return graph, graph_log, eager, hf, layers


def test_graph_tokens_equal_eager_and_hugging_face_tokens(runs):
    graph, _, eager, hf, _ = runs
    assert set(graph) == set(BATCHES.split(","))
    for n in graph:
        assert graph[n] == eager[n], f"batch {n} diverged from eager"
        expected = hf["long"] if n == "long" else hf["24"][: int(n)]
        assert graph[n] == expected, f"batch {n} diverged from Hugging Face"


def test_whole_decoder_is_one_graph_with_attention_inside(runs):
    _, log, _, _, layers = runs
    lines = [l for l in log.splitlines() if "compiled the whole decoder as one graph" in l]
    assert len(lines) == 1, lines
    assert f"{layers} attention ops, {layers} kv-cache writes" in lines[0]


def test_decode_graphs_captured_and_fallbacks_logged(runs):
    _, log, _, _, _ = runs
    assert "cudagraph_mode FULL_AND_PIECEWISE maps to FULL_DECODE_ONLY" in log  # vLLM's default mode
    assert "capture sizes on the host target: 5 of 5 kept (limit 16): [1, 2, 4, 8, 16]; worst-case padding 78%" in log
    assert "captured 4 graph(s) [1, 2, 8, 16]" in log
    assert "captured size 16 (decode, 16 requests)" in log
    assert (
        f"capture failed (RuntimeError: failure injected by VLLM_NPU_GRAPH_FAIL_CAPTURE_SIZES) for size {FAILED_SIZE}"
        in log
    )
    summary = next(l for l in log.splitlines() if "eager-fallback summary" in l)
    assert "decode batch of more than 16 tokens" in summary
    assert "a prefill or mixed batch" in summary
    assert f"size {FAILED_SIZE}: capture failed" in summary
    assert "GraphFaithfulnessError" not in log
