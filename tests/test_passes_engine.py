"""Fusion passes forced on, end to end: the compile log counts what the architecture
implies and the greedy tokens equal eager mode's."""

import re

import pytest
from test_graph_mode import run_driver

# (rms_norm, add_rms_norm, swiglu): the first input norm has no residual; every other
# norm (post-attention, next input, final) adds one; Qwen3 adds q/k norms per layer.
EXPECTED = {
    "llama": (1, 4, 2),
    "qwen2": (1, 4, 2),
    "qwen3": (1 + 2 * 2, 4, 2),
    "smollm2": (1, 60, 30),
}


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_pass_counts_and_tokens(arch, tiny_model, default_model):
    model = default_model if arch == "smollm2" else tiny_model(arch)
    fused, log = run_driver(model, "passes", batches="1,3", max_tokens=8)
    lines = [l for l in log.splitlines() if "npu_graph passes:" in l]
    assert lines, log[-3000:]
    counts = dict(re.findall(r"(\w+)=(\d+)", lines[0].split("npu_graph passes:")[1].split("[")[0]))
    rms, add_rms, swiglu = EXPECTED[arch]
    assert counts == {"rms_norm": str(rms), "add_rms_norm": str(add_rms), "swiglu": str(swiglu)}, lines[0]
    if arch in ("qwen3", "smollm2"):  # tokens against eager mode (an engine start each)
        eager, _ = run_driver(model, "eager", batches="1,3", max_tokens=8)
        assert fused == eager
