"""End to end: the engine runs our Triton attention kernels (CPU interpreter on the
host target) for prefill and several decode steps, with the reference path's tokens."""

from test_graph_mode import run_driver


def test_triton_kernels_serve_the_same_tokens_as_the_reference(tiny_model):
    model = tiny_model("qwen3")
    triton_tokens, log = run_driver(model, "triton", batches="1,3", max_tokens=6)
    reference_tokens, ref_log = run_driver(model, "eager", batches="1,3", max_tokens=6)
    assert "kernels (attention and fused ops): triton (Triton CPU interpreter)" in log
    assert "kernels (attention and fused ops): reference" in ref_log
    assert triton_tokens == reference_tokens
