"""Small helpers for matching aten graphs."""

from types import SimpleNamespace

import torch
import torch.fx as fx
from torch.fx.operator_schemas import normalize_function

aten = torch.ops.aten


def is_call(node, *targets) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and node.target in targets


def arguments(node: fx.Node) -> SimpleNamespace:
    """An aten call's arguments by schema name, defaults filled in (`arguments(split).dim`)."""
    bound = normalize_function(node.target, node.args, node.kwargs, normalize_to_only_use_kwargs=True)
    return SimpleNamespace(**bound.kwargs)


def functionalized_calls(graph, op) -> list:
    """The auto_functionalized_v2 nodes that call the in-place op `op`."""
    return [n for n in graph.nodes if is_call(n, torch.ops.higher_order.auto_functionalized_v2) and n.args[0] is op]


def strip_converts(node):
    """The value under any prims.convert_element_type casts (dtype-insensitive matching)."""
    while is_call(node, torch.ops.prims.convert_element_type.default):
        node = node.args[0]
    return node


def replace_node(old: fx.Node, new: fx.Node) -> None:
    old.replace_all_uses_with(new)
    new.meta.update({k: v for k, v in old.meta.items() if k == "val"})


def _same_rows(view: fx.Node, source: fx.Node) -> bool:
    """A view that leaves a 2-D value as it is ([M, K] -> [-1, K])."""
    a, b = source.meta.get("val"), view.meta.get("val")
    return a is not None and b is not None and a.dim() == b.dim() == 2 and a.shape[-1] == b.shape[-1]


def sole_quant_reader(node: fx.Node):
    """The npu_graph::quant_per_token call that is the only reader of node's value
    (through views that leave it as it is) and the views on the way, else (None, [])."""
    views = []
    while len(node.users) == 1:
        user = next(iter(node.users))
        if is_call(user, torch.ops.npu_graph.quant_per_token.default):
            return user, views
        if not (
            is_call(user, aten.view.default, aten.reshape.default, aten._unsafe_view.default) and _same_rows(user, node)
        ):
            break
        views.append(user)
        node = user
    return None, []


def is_rows(node) -> bool:
    """A 2-D value ([tokens, features]): what the fused quantize ops take."""
    value = node.meta.get("val") if isinstance(node, fx.Node) else None
    return value is not None and value.dim() == 2


def erase_chain(graph: fx.Graph, nodes) -> None:
    """Erase nodes that fed each other, last reader first."""
    for node in reversed(nodes):
        graph.erase_node(node)


def fold_quant(graph: fx.Graph, op, fused_op) -> int:
    """Each `op` call on rows whose only reader is a per-token quantization ->
    `fused_op` with the same arguments, returning (int8, scale) as the quantization did."""
    count = 0
    for node in list(graph.nodes):
        if not is_call(node, op) or not is_rows(node.args[0]):
            continue
        quantize, views = sole_quant_reader(node)
        if quantize is None:
            continue
        with graph.inserting_before(node):
            new = graph.call_function(fused_op, node.args)
        quantize.replace_all_uses_with(new)  # its readers take (int8, scale) by index: the same
        erase_chain(graph, [node, *views, quantize])
        count += 1
    return count
