"""Our fusion passes, in the order they run. Each module has NAME, NEEDS_IR_WRAP
(whether it matches vLLM's IR ops, which vLLM then keeps as ops in the graph),
DEFAULT_ON (the targets where it runs unless switched off; "quantized": every target
when the model is W8A8), optionally AFTER (the passes
whose output it matches, which must run before it) and run(graph) -> number of rewrites.

Defaults: on the NPU every pass (the fused torch_npu / Triton ops are the point there;
on an H100 the folded RoPE+KV-write kernel beat RoPE then a separate write, see
bench/results/) but `linear` (the device's own GEMM needs no pass). On the host
`linear` (our C++ GEMM op) and `attention`, which the host lowering fuses with each
layer's KV write into one op (targets/host_attention.py): measured with bench/passes.py,
every other fusion pass alone or together decodes slower than Inductor's own fusion of
the plain graph (the opaque ops stop it). On a W8A8 model every target also runs the
norm and SwiGLU passes and the quant fusions that fold each per-token quantization into
them (one C++ op instead of Inductor's kernel plus a quantization call on the host)."""

from vllm_npu_graph.passes import (
    add_rms_norm,
    add_rms_norm_quant,
    attention,
    linear,
    noop,
    qkv_rope,
    rms_norm,
    rms_norm_quant,
    rope_kv_write,
    swiglu,
    swiglu_quant,
)

PASSES = (
    noop,
    rms_norm,
    add_rms_norm,
    swiglu,
    rms_norm_quant,
    add_rms_norm_quant,
    swiglu_quant,
    qkv_rope,
    rope_kv_write,
    attention,
    linear,
)
PASS_NAMES = tuple(p.NAME for p in PASSES)


def check_order(passes) -> None:
    """Every pass runs after the passes whose output it matches."""
    names = [p.NAME for p in passes]
    for i, p in enumerate(passes):
        late = [dep for dep in getattr(p, "AFTER", ()) if dep not in names[:i]]
        if late:
            raise RuntimeError(f"pass {p.NAME} matches the output of {', '.join(late)}, which must run before it")


check_order(PASSES)


def enabled_passes(target_name: str, switches: dict[str, bool], quantized: bool = False):
    """The passes that run on this target for this model: the defaults, overridden by name."""
    return [
        p
        for p in PASSES
        if switches.get(p.NAME, target_name in p.DEFAULT_ON or (quantized and "quantized" in p.DEFAULT_ON))
    ]
