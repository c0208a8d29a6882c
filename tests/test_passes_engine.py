"""Fusion passes forced on, end to end: the compile log counts what the architecture
implies and the greedy tokens equal Hugging Face's."""

import re

import pytest
from helpers.engines import hf_greedy_ids
from helpers.graph_mode_driver import prompts_for
from helpers.graph_runs import run_driver
from helpers.replays import PREFILL, assert_graph_mode

pytestmark = pytest.mark.engine  # starts engines: not in `make test-fast`


# Per pass, in the order they run. No-ops: 0 on the host, where Inductor has removed them
# before our passes. Norms: the first input norm has no residual; every other norm
# (post-attention, next input, final) adds one; Qwen3 adds q/k norms per layer (counted
# by rms_norm, then folded into qkv_rope). One SwiGLU, QKV+RoPE, RoPE+KV write and
# attention per layer; four linear layers per layer (QKV, output, gate/up, down). The host
# lowering then finds no KV write + attention pair left to fuse (RoPE+KV write took the writes).
def expected(layers: int, qk_norm: bool) -> dict:
    return {
        "noop": 0,
        "rms_norm": 1 + 2 * layers * qk_norm,
        "add_rms_norm": 2 * layers,
        "swiglu": layers,
        "rms_norm_quant": 0,  # the quant fusions find no quantization in a float model
        "add_rms_norm_quant": 0,
        "swiglu_quant": 0,
        "qkv_rope": layers,
        "rope_kv_write": layers,
        "attention": layers,
        "linear": 4 * layers,
        "host_attention": 0,
    }


EXPECTED = {
    "llama": expected(2, False),
    "qwen2": expected(2, False),
    "qwen3": expected(2, True),
}


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_pass_counts_and_tokens(arch, tiny_model):
    """Tiny seeded models: the counts follow the layer count (SmolLM2 is a Llama)."""
    model = tiny_model(arch)
    fused, log = run_driver(model, "passes", batches="1,3", max_tokens=8)
    lines = [line for line in log.splitlines() if "npu_graph passes:" in line]
    assert lines, log[-3000:]
    counts = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[0].split("npu_graph passes:")[1].split("[")[0])}
    assert counts == EXPECTED[arch], lines[0]
    for spec, tokens in fused.items():
        assert tokens == hf_greedy_ids(model, prompts_for(str(model), spec), max_tokens=8), f"batch {spec}"
    assert_graph_mode(log, allowed=(PREFILL, "decode batch of more than 1 tokens"))  # size 1 replayed
