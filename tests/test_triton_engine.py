"""Our Triton kernels inside an engine (CPU interpreter here): graph mode runs them
eagerly for every prefill and, under the strict host graph, replays decode graphs
captured at a short dummy context for contexts up to 700 tokens (split-KV decode: the
bound is max_model_len 2,048); the tokens equal the reference kernels' eager tokens.
(1,500-token contexts under the Triton kernels: tests/test_host_graph.py, without an
engine: the interpreter is slow.)"""

import pytest
from helpers.graph_runs import run_driver
from helpers.replays import PREFILL, assert_graph_mode

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`


def test_triton_kernels_in_graph_mode_match_the_reference_kernels(tiny_model):
    model = tiny_model("qwen3")
    graph, graph_log = run_driver(model, "triton-graph", batches="1,3,mid", max_tokens=6)
    reference, _ = run_driver(model, "eager", batches="1,3,mid", max_tokens=6)
    assert "kernels (attention and fused ops): triton (Triton CPU interpreter)" in graph_log
    assert "captured 3 graph(s) [1, 2, 3]" in graph_log
    (rank,) = assert_graph_mode(graph_log)  # decodes replayed; prefills ran the kernels eagerly
    assert PREFILL in next(iter(rank["eager"]))
    assert graph == reference
