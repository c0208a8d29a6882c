"""Linear layers -> npu_graph::linear (host native: oneDNN GEMM on a weight packed once).

Matches `mm(x, permute(w, [1, 0]))` and `addmm(c, x, permute(w, [1, 0]))` where `w` is
a 2-D static-shaped graph input (a model weight: vLLM lifts parameters as inputs), i.e. F.linear as
the aten graph spells it. A 1-D `c` is the layer's bias; a 2-D one is an addend Inductor
folded in (a residual), which stays a separate add."""

import torch
import torch.fx as fx

from vllm_npu_graph.passes._match import is_call, replace_node

NAME = "linear"
NEEDS_IR_WRAP = False
# The host's native GEMM packs weights (2-3x faster at decode sizes); a device's own
# GEMM needs no pass.
DEFAULT_ON = ("host",)


def _weight_of(node) -> fx.Node | None:
    if is_call(node, torch.ops.aten.permute.default) and list(node.args[1]) == [1, 0]:
        weight = node.args[0]
    elif is_call(node, torch.ops.aten.t.default):
        weight = node.args[0]
    else:
        return None
    val = weight.meta.get("val") if isinstance(weight, fx.Node) else None
    # Model state (weights, buffers) has static shapes; every activation input carries
    # the symbolic token count. Only state may be packed once and reused.
    if weight.op != "placeholder" or val is None or val.dim() != 2 or not all(isinstance(d, int) for d in val.shape):
        return None
    return weight


def _ndim(node) -> int | None:
    val = node.meta.get("val") if isinstance(node, fx.Node) else None
    return None if val is None else val.dim()


def run(graph: fx.Graph) -> int:
    from vllm_npu_graph.ops import fused  # noqa: F401  (registers torch.ops.npu_graph)

    count = 0
    for node in list(graph.nodes):
        if is_call(node, torch.ops.aten.mm.default):
            x, wt = node.args
            bias = None
        elif is_call(node, torch.ops.aten.addmm.default) and not node.kwargs:
            bias, x, wt = node.args
        else:
            continue
        weight = _weight_of(wt)
        if weight is None:
            continue
        addend = None
        if bias is not None and _ndim(bias) != 1:
            bias, addend = None, bias
        with graph.inserting_before(node):
            new = graph.call_function(torch.ops.npu_graph.linear.default, (x, weight, bias))
            if addend is not None:
                new.meta["val"] = node.meta.get("val")
                new = graph.call_function(torch.ops.aten.add.Tensor, (addend, new))
        replace_node(node, new)
        graph.erase_node(node)
        count += 1
    return count
