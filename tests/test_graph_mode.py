"""Graph mode (compiled whole decoder + one captured graph per padded size) gives the
same greedy tokens as eager mode, and every step it can't serve runs eagerly with a
logged reason. Size 4's capture is made to fail on purpose."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
FAILED_SIZE = 4


def run_driver(model, mode: str, batches: str = "1,3,8,16,24", max_tokens: int = 12) -> tuple[dict, str]:
    env = dict(os.environ, VLLM_NPU_GRAPH_TARGET="host", VLLM_NPU_GRAPH_FAIL_CAPTURE_SIZES=str(FAILED_SIZE),
               PYTHONPATH=str(HERE))
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
    return graph, graph_log, eager, layers


def test_graph_tokens_equal_eager_tokens(runs):
    graph, _, eager, _ = runs
    assert set(graph) == {"1", "3", "8", "16", "24"}
    for n in graph:
        assert graph[n] == eager[n], f"batch of {n} diverged"


def test_whole_decoder_is_one_graph_with_attention_inside(runs):
    _, log, _, layers = runs
    lines = [l for l in log.splitlines() if "compiled the whole decoder as one graph" in l]
    assert len(lines) == 1, lines
    assert f"{layers} attention ops, {layers} kv-cache writes" in lines[0]


def test_captures_and_logged_fallbacks(runs):
    _, log, _, _ = runs
    assert "captured 4 graph(s) [1, 2, 8, 16]" in log
    assert f"capture failed (RuntimeError: failure injected by VLLM_NPU_GRAPH_FAIL_CAPTURE_SIZES) for size {FAILED_SIZE}" in log
    summary = next(l for l in log.splitlines() if "eager-fallback summary" in l)
    assert "batch of more than 16 tokens" in summary
    assert f"size {FAILED_SIZE}: capture failed" in summary
