"""Graph mode (compiled whole decoder + one captured decode graph per padded size,
under the strict host graph) gives the same greedy tokens as eager mode and as Hugging
Face, and every step it can't serve runs eagerly with a logged reason. Size 4's capture
is made to fail on purpose."""

import pytest
from helpers import graph_runs
from helpers.engines import hf_greedy_ids
from helpers.graph_mode_driver import prompts_for
from helpers.replays import PREFILL, assert_graph_mode

from vllm_npu_graph import envs

pytestmark = pytest.mark.engine
FAILED_SIZE = 4
# 24: above the largest captured size; long: contexts up to 1,490 tokens in one captured size
BATCHES = "1,2,3,5,8,13,16,24,long"


def run_driver(model, mode: str) -> tuple[dict, str]:
    return graph_runs.run_driver(model, mode, BATCHES, **{envs.FAIL_CAPTURE_SIZES: str(FAILED_SIZE)})


@pytest.fixture(scope="module")
def runs(tiny_model):
    """Tiny Qwen3 (SmolLM2's graph and eager tokens against Hugging Face: test_host_isa.py)."""
    model = tiny_model("qwen3")
    layers = 2
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
    lines = [line for line in log.splitlines() if "compiled the whole decoder as one graph" in line]
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
    (rank,) = assert_graph_mode(log, allowed=(PREFILL, "decode batch of more than 16 tokens", f"size {FAILED_SIZE}:"))
    assert {PREFILL, "decode batch of more than 16 tokens", f"size {FAILED_SIZE}: capture failed"} <= {
        reason.split(" (")[0] for reason in rank["eager"]
    }, rank
    assert "GraphFaithfulnessError" not in log
