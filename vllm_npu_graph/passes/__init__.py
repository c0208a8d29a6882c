"""Our fusion passes, in the order they run. Each module has NAME, NEEDS_IR_WRAP
(whether it matches vLLM's IR ops, which vLLM then keeps as ops in the graph) and
run(graph) -> number of rewrites."""

from vllm_npu_graph.passes import add_rms_norm, attention, noop, qkv_rope, rms_norm, rope_kv_write, swiglu

PASSES = (noop, rms_norm, add_rms_norm, swiglu, qkv_rope, rope_kv_write, attention)
PASS_NAMES = tuple(p.NAME for p in PASSES)


def enabled_passes(target_name: str, switches: dict[str, bool]):
    """Passes on for this target: on by default on the NPU (the fused device ops are
    the point), off by default on the host (measured slower there: the opaque fused ops
    stop Inductor's own fusion), each switchable by name."""
    default = target_name == "npu"
    return [p for p in PASSES if switches.get(p.NAME, default)]
