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
