"""A tiny seeded Qwen3 quantized to W8A8 offline (quantize.py, the same recipe as the
SmolLM2 checkpoint), served in graph mode with the quant fusions on and off: Qwen3's
per-head q/k RMSNorms sit beside the quantized linears, and the quant fusions must take
only the norms a quantization reads. Scored against the pure-torch W8A8 forward as
test_w8a8.py scores SmolLM2 (teacher-forced, held to the reference's own one-ulp noise
floor); eager W8A8 is scored there, on SmolLM2."""

import tempfile

import pytest
from helpers import w8a8_reference
from helpers.graph_runs import run_script
from helpers.replays import assert_graph_mode
from helpers.w8a8_driver import prompt_ids, text_ids

from vllm_npu_graph import envs

pytestmark = pytest.mark.engine

LAYERS = 2  # the tiny models' depth (models.py)
# graph-unfused: the quant fusion passes off; graph-avx2: the AVX2 tier forced (oneDNN
# capped to it: its int8 GEMM saturates there, so our exact int8 kernel takes every row)
MODES = ("graph", "graph-unfused", "graph-avx2")


@pytest.fixture(scope="module")
def qwen3_w8a8(tiny_model):
    from vllm_npu_graph.quantize import build_w8a8

    source = tiny_model("qwen3")
    return build_w8a8(source, source.with_name(f"{source.name}-W8A8"))


@pytest.fixture(scope="module")
def runs(qwen3_w8a8):
    out = {}
    for mode in MODES:
        forced = {envs.HOST_ISA: "avx2"} if mode == "graph-avx2" else {}
        cache = tempfile.mkdtemp(prefix="npu_graph_")
        out[mode] = run_script(
            "w8a8_driver.py", qwen3_w8a8, mode.removesuffix("-avx2"), VLLM_CACHE_ROOT=cache, **forced
        )
    return out


def test_the_quant_fusions_take_the_layer_norms_not_the_qk_norms(runs):
    """One input norm without a residual, 2 * LAYERS - 1 residual norms before a
    quantized linear (the last is the final norm), one SwiGLU a layer; the q/k norms
    (2 a layer) stay RMSNorms."""
    log = runs["graph"][1]
    fused = f"rms_norm_quant=1 add_rms_norm_quant={2 * LAYERS - 1} swiglu_quant={LAYERS}"
    assert f"rms_norm={1 + 2 * LAYERS} add_rms_norm={2 * LAYERS} swiglu={LAYERS} {fused}" in log, log[-3000:]
    unfused = runs["graph-unfused"][1]
    assert "rms_norm_quant=" not in unfused and f"add_rms_norm={2 * LAYERS} swiglu={LAYERS}" in unfused
    for mode in MODES:
        assert_graph_mode(runs[mode][1])


@pytest.mark.parametrize("mode", MODES)
def test_greedy_tokens_and_text_logprobs_within_the_noise_floor(mode, runs, qwen3_w8a8):
    reference = w8a8_reference.load(qwen3_w8a8)
    exact, floor_mean, floor_max = w8a8_reference.noise_floor(qwen3_w8a8, reference, text_ids(str(qwen3_w8a8)))
    run = runs[mode][0]
    if mode == "graph-avx2":
        assert "CPU tier avx2" in runs[mode][1] and "oneDNN ISA cap: AVX2" in runs[mode][1]
    gap, logprob = w8a8_reference.worst_moves(reference, prompt_ids(str(qwen3_w8a8)), run)
    diffs = [abs(a - b) for a, b in zip(run["text_logprobs"], exact)]
    mean = sum(diffs) / len(diffs)
    print(f"{mode}: worst gap {gap:.3f}, worst logprob {logprob:.3f}; text mean {mean:.4f}, max {max(diffs):.3f}")
    # A wide-init tiny model may have no near-ties at all (floor 0): then only float noise.
    bar = max(floor_max, 1e-3)
    assert gap < bar and logprob < bar
    assert mean < 1.25 * floor_mean + 1e-4 and max(diffs) < 1.5 * bar
