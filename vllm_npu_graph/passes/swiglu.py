"""SiLU(gate) * up on the split gate/up projection -> npu_graph::swiglu
(NPU: torch_npu.npu_swiglu).

Matches, on the aten graph, mul(silu(x[..., :I]), x[..., I:2I]) where x has exactly
2I features and silu is decomposed as x / (1 + exp(-x)) or x * sigmoid(x), with any
dtype casts around it. Left alone when the gate's activation has another user."""

import torch
import torch.fx as fx

from vllm_npu_graph.passes._match import arguments, aten, is_call, replace_node, strip_converts

NAME = "swiglu"
NEEDS_IR_WRAP = False
DEFAULT_ON = ("npu", "quantized")


def _silu_input(node):
    """x when node computes silu(x) (up to casts), else None."""
    node = strip_converts(node)
    if is_call(node, aten.silu.default):
        return strip_converts(node.args[0])
    if is_call(node, aten.div.Tensor):
        x, den = node.args
        if is_call(den, aten.add.Tensor) and den.args[1] == 1 and is_call(den.args[0], aten.exp.default):
            neg = den.args[0].args[0]
            if is_call(neg, aten.neg.default) and strip_converts(neg.args[0]) is strip_converts(x):
                return strip_converts(x)
    if is_call(node, aten.mul.Tensor):
        a, b = node.args
        if is_call(b, aten.sigmoid.default) and strip_converts(b.args[0]) is strip_converts(a):
            return strip_converts(a)
    return None


def _last_dim_slice(node):
    """(source, start, end) for a unit-step slice of the last dim, else None."""
    if not is_call(node, aten.slice.Tensor):
        return None
    args = arguments(node)
    src = args.input
    val = src.meta.get("val") if isinstance(src, fx.Node) else None
    if val is None or args.dim not in (-1, val.dim() - 1) or args.step != 1:
        return None
    return src, args.start, args.end


def run(graph: fx.Graph) -> int:
    from vllm_npu_graph.ops import fused  # noqa: F401

    count = 0
    for node in list(graph.nodes):
        if not is_call(node, aten.mul.Tensor) or len(node.args) != 2:
            continue
        for act, up in (node.args, node.args[::-1]):
            gate = _silu_input(act)
            g, u = _last_dim_slice(gate), _last_dim_slice(strip_converts(up))
            if g is None or u is None or g[0] is not u[0]:
                continue
            src, width = g[0], src_width(g[0])
            half = width // 2 if width else None
            if half is None or width != 2 * half or g[1:] != (0, half) or u[1] != half or (u[2] or 0) < width:
                continue
            if len(strip_converts(act).users) != 1:
                continue
            with graph.inserting_before(node):
                new = graph.call_function(torch.ops.npu_graph.swiglu.default, (src,))
                out_dtype = node.meta["val"].dtype if "val" in node.meta else None
                if out_dtype is not None and out_dtype != src.meta["val"].dtype:
                    new = graph.call_function(torch.ops.prims.convert_element_type.default, (new, out_dtype))
            replace_node(node, new)
            graph.erase_node(node)
            count += 1
            break
    return count


def src_width(src) -> int | None:
    width = src.meta["val"].shape[-1]
    return int(width) if isinstance(width, int) else None
