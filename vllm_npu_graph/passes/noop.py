"""No-op elimination: views, reshapes, expands, slices, casts and permutes that return
their input unchanged are replaced by the input.

Runs first, so the fusion patterns see through them. On the host Inductor removes most
of these itself before our passes; on the NPU our passes feed npugraph_ex directly,
which keeps every node. Graph outputs are left alone (an output must not become an
alias of an input)."""

import torch
import torch.fx as fx

from vllm_npu_graph.passes._match import aten, is_call

NAME = "noop"
NEEDS_IR_WRAP = False
DEFAULT_ON = ("npu",)

# Clones are not listed: after Inductor's re-inplacing a clone can protect its input.
_SAME_SHAPE = (
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
    aten.expand.default,
    aten.alias.default,
)


def _val(node):
    return node.meta.get("val") if isinstance(node, fx.Node) else None


def _same_size(a, b) -> bool:
    """Sizes equal for every value of the symbols (structural, installs no guard)."""
    if isinstance(a, torch.SymInt) or isinstance(b, torch.SymInt):
        return isinstance(a, torch.SymInt) and isinstance(b, torch.SymInt) and a.node.expr == b.node.expr
    return int(a) == int(b)


def _is_noop(node) -> bool:
    out, src = _val(node), _val(node.args[0]) if node.args else None
    if not isinstance(out, torch.Tensor) or not isinstance(src, torch.Tensor):
        return False
    if out.dtype != src.dtype or out.dim() != src.dim() or not all(map(_same_size, out.shape, src.shape)):
        return False
    if is_call(node, *_SAME_SHAPE):
        return True
    if is_call(node, aten.slice.Tensor):
        return (node.args[4] if len(node.args) > 4 else node.kwargs.get("step", 1)) == 1
    if is_call(node, torch.ops.prims.convert_element_type.default):
        return True
    if is_call(node, aten.permute.default):
        return list(node.args[1]) == list(range(src.dim()))
    return False


def run(graph: fx.Graph) -> int:
    outputs = {n for out in graph.find_nodes(op="output") for n in out.all_input_nodes}
    count = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node in outputs or not _is_noop(node):
            continue
        node.replace_all_uses_with(node.args[0])
        graph.erase_node(node)
        count += 1
    return count
