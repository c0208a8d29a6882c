"""QKV split + optional per-head QK RMSNorm (Qwen3) + rotary embedding ->
npu_graph::qkv_rope, one op returning q, k and v as [T, heads, head_size].

Matches, on the aten graph: split_with_sizes(qkv, [Hq*D, Hkv*D, Hkv*D], -1); q and k
each reshaped to [T, H, D], optionally normed (npu_graph.rms_norm or vllm_ir.rms_norm),
then NeoX RoPE over the whole head (cat(x1*cos - x2*sin, x2*cos + x1*sin) with cos/sin
from cos_sin_cache[positions]); v reshaped to [T, Hkv, D]. Left alone when the rotary
covers part of the head, when q and k use different positions or caches, or when
anything else reads an intermediate (the split halves, the normed head)."""

import operator
from typing import NamedTuple

import torch
import torch.fx as fx

from vllm_npu_graph.passes._match import arguments, aten, is_call, replace_node

NAME = "qkv_rope"
NEEDS_IR_WRAP = False
DEFAULT_ON = ("npu",)


class Half(NamedTuple):
    x: fx.Node  # the tensor split in two along its last dim
    index: int  # 0: first half, 1: second half


class Trig(NamedTuple):
    cache: fx.Node  # cos_sin_cache
    positions: fx.Node
    which: int  # 0: cos, 1: sin


class Term(NamedTuple):
    """mul(half of x, cos or sin): one of RoPE's four products."""

    half: Half
    trig: Trig


class Rope(NamedTuple):
    x: fx.Node
    cache: fx.Node
    positions: fx.Node


class MatchedRope(NamedTuple):
    node: fx.Node  # RoPE's output
    cache: fx.Node
    positions: fx.Node
    norm_weight: fx.Node | None  # the per-head RMSNorm before it (Qwen3), if any
    norm_eps: float | None


# NeoX RoPE: cat(x1*cos - x2*sin, x2*cos + x1*sin); the first pair in order, the second in any order.
FIRST_PAIR = [(0, 0), (1, 1)]  # (half index, trig which)
SECOND_PAIR = [(0, 1), (1, 0)]


def _last_dim(node, dim) -> bool:
    val = node.meta.get("val") if isinstance(node, fx.Node) else None
    return val is not None and dim in (-1, val.dim() - 1)


def _split_half(node) -> Half | None:
    """Item i of split(x, half, -1), with x exactly two halves."""
    if not is_call(node, operator.getitem) or not is_call(node.args[0], aten.split.Tensor):
        return None
    split = arguments(node.args[0])
    x = split.input
    if not _last_dim(x, split.dim) or x.meta["val"].shape[-1] != 2 * split.split_size:
        return None
    return Half(x, node.args[1])


def _trig(node) -> Trig | None:
    """cos (which=0) or sin (which=1) of cache[positions], unsqueezed over the heads."""
    if not is_call(node, aten.unsqueeze.default) or node.args[1] != -2:
        return None
    half = _split_half(node.args[0])
    if half is None or not is_call(half.x, aten.index.Tensor):
        return None
    cache, indices = half.x.args
    if len(indices) != 1:
        return None
    return Trig(cache, indices[0], half.index)


def _term(node) -> Term | None:
    if not is_call(node, aten.mul.Tensor):
        return None
    for a, b in (node.args, node.args[::-1]):
        half, trig = _split_half(a), _trig(b)
        if half is not None and trig is not None:
            return Term(half, trig)
    return None


def _rope(node) -> Rope | None:
    """NeoX RoPE of x over its whole last dim."""
    if not is_call(node, aten.cat.default):
        return None
    cat = arguments(node)
    if len(cat.tensors) != 2 or not _last_dim(node, cat.dim):
        return None
    first, second = cat.tensors
    if not is_call(first, aten.sub.Tensor) or not is_call(second, aten.add.Tensor):
        return None
    terms = [_term(n) for n in (*first.args, *second.args)]
    if any(t is None for t in terms):
        return None
    rope = Rope(terms[0].half.x, terms[0].trig.cache, terms[0].trig.positions)
    if any(Rope(t.half.x, t.trig.cache, t.trig.positions) != rope for t in terms):
        return None
    roles = [(t.half.index, t.trig.which) for t in terms]
    if roles[:2] != FIRST_PAIR or sorted(roles[2:]) != SECOND_PAIR:
        return None
    if rope.cache.meta["val"].shape[-1] != rope.x.meta["val"].shape[-1]:
        return None  # partial rotary
    halves = [u for u in rope.x.users if is_call(u, aten.split.Tensor)]
    if len(rope.x.users) != 1 or any(len(g.users) != 2 for h in halves for g in h.users):
        return None  # something else reads the head or one of its halves
    return rope


_NORMS = ("npu_graph.rms_norm.default", "vllm_ir.rms_norm.default")


def _unnorm(x):
    """(head, weight, eps) for x = rms_norm(head, weight, eps), else (x, None, None)."""
    if isinstance(x, fx.Node) and x.op == "call_function" and str(x.target) in _NORMS and len(x.args) >= 3:
        if len(x.users) == 1 and (len(x.args) < 4 or x.args[3] is None) and x.args[1] is not None:
            return x.args[0], x.args[1], float(x.args[2])
    return x, None, None


def _head_view(node, split_node, index, heads, head_size):
    """True when node reshapes item `index` of split_node to [T, heads, head_size]."""
    if not is_call(node, aten.reshape.default, aten.view.default):
        return False
    item = node.args[0]
    if not (is_call(item, operator.getitem) and item.args == (split_node, index)):
        return False
    shape = node.meta["val"].shape
    return len(shape) == 3 and shape[1] == heads and shape[2] == head_size


def run(graph: fx.Graph) -> int:
    from vllm_npu_graph.ops import fused  # noqa: F401

    order = {n: i for i, n in enumerate(graph.nodes)}
    ropes: dict[fx.Node, MatchedRope] = {}
    for node in graph.nodes:
        rope = _rope(node)
        if rope is not None:
            head, weight, eps = _unnorm(rope.x)
            ropes[head] = MatchedRope(node, rope.cache, rope.positions, weight, eps)
    count = 0
    for split in list(graph.nodes):
        if not is_call(split, aten.split_with_sizes.default):
            continue
        split_args = arguments(split)
        qkv, sizes = split_args.input, split_args.split_sizes
        if not _last_dim(qkv, split_args.dim):
            continue
        items = {u.args[1]: u for u in split.users if is_call(u, operator.getitem)}
        if len(sizes) != 3 or sorted(items) != [0, 1, 2] or any(len(items[i].users) != 1 for i in (0, 1)):
            continue
        q_view, k_view = (next(iter(items[i].users)) for i in (0, 1))
        if q_view not in ropes or k_view not in ropes:
            continue
        q, k = ropes[q_view], ropes[k_view]
        cache, positions = q.cache, q.positions
        q_rope, q_weight, q_eps = q.node, q.norm_weight, q.norm_eps
        k_rope, k_weight, k_eps = k.node, k.norm_weight, k.norm_eps
        head_size = int(q_view.meta["val"].shape[2])
        hq, hkv = (int(n) // head_size for n in sizes[:2])
        if (k.cache, k.positions) != (cache, positions) or sizes[2] != sizes[1]:
            continue
        if not (_head_view(q_view, split, 0, hq, head_size) and _head_view(k_view, split, 1, hkv, head_size)):
            continue
        if None not in (q_eps, k_eps) and q_eps != k_eps:
            continue
        v_views = list(items[2].users)
        if not all(_head_view(v, split, 2, hkv, head_size) for v in v_views):
            continue
        inputs = [qkv, positions, cache, q_weight, k_weight]
        first_use = min((u for out in (q_rope, k_rope, *v_views) for u in out.users), key=order.get, default=None)
        if first_use is None or any(isinstance(i, fx.Node) and order[i] >= order[first_use] for i in inputs):
            continue
        eps = q_eps if q_eps is not None else (k_eps if k_eps is not None else 1e-6)
        with graph.inserting_before(first_use):
            new = graph.call_function(
                torch.ops.npu_graph.qkv_rope.default,
                (qkv, positions, cache, hq, hkv, head_size, q_weight, k_weight, eps),
            )
            outs = [graph.call_function(operator.getitem, (new, i)) for i in range(3)]
        for old, out in ((q_rope, outs[0]), (k_rope, outs[1]), *((v, outs[2]) for v in v_views)):
            replace_node(old, out)
        count += 1
    return count
