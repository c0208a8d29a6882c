"""A fake `torch_npu` for tests (put tests/fakes on sys.path; never installed).

Every op call is bound against the real torch-npu 2.13.0 schemas (contract.py) and
recorded in CALLS; a wrong argument name, type or arity raises TypeError as the real op
would. A few ops our NPU target uses also compute their documented result on CPU
tensors. Importing it installs a fake `torch.npu` namespace (devices, memory, NPUGraph,
graph, graph_pool_handle with the wheel's signatures, npugraph_ex)."""

import sys

import torch

_FAKES = __path__[0].rsplit("/", 1)[0]
if _FAKES not in sys.path:
    sys.path.insert(0, _FAKES)
import contract  # noqa: E402
import fake_npu_runtime  # noqa: E402

CALLS: list[tuple[str, dict]] = []


def _rms(x, gamma, eps):
    xf = x.float()
    rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (xf * rstd * gamma.float()).to(x.dtype), rstd


def _npu_rms_norm(self, gamma, epsilon):
    return _rms(self, gamma, epsilon)


def _npu_add_rms_norm(x1, x2, gamma, epsilon):
    x_sum = (x1.float() + x2.float()).to(x1.dtype)
    y, rstd = _rms(x_sum, gamma, epsilon)
    return y, rstd, x_sum


def _npu_swiglu(self, dim):
    gate, up = self.chunk(2, dim=dim)
    return (torch.nn.functional.silu(gate.float()) * up.float()).to(self.dtype)


# The MoE ops as documented (Ascend op-plugin API docs for torch-npu 2.13), with the
# dtype rules the real ops enforce checked.
def _npu_moe_gating_top_k_softmax(x, finished, k):
    y, idx = torch.topk(torch.softmax(x.float(), dim=-1), k, dim=-1)
    rows = x.shape[0]
    row_idx = torch.arange(rows * k, dtype=torch.int32).reshape(k, rows).t()
    return y.to(x.dtype), idx.to(torch.int32), row_idx


def _npu_moe_init_routing_v2(x, expert_idx, active_num, expert_num, expert_tokens_num_type, active_expert_range, **_):
    """Rows sorted by expert (stable), the source-to-destination index of each
    token-major (token, choice) slot, per-expert counts (int64) of the range."""
    assert expert_idx.dtype == torch.int32, "expert_idx must be int32"
    assert list(active_expert_range) == [0, expert_num] and expert_tokens_num_type == 1
    k = expert_idx.shape[1]
    flat = expert_idx.reshape(-1).long()
    order = torch.sort(flat, stable=True).indices
    src_to_dst = torch.empty_like(order)
    src_to_dst[order] = torch.arange(order.numel())
    counts = torch.bincount(flat, minlength=expert_num)[:expert_num]
    return x[order // k], src_to_dst.to(torch.int32), counts.to(torch.int64), torch.zeros(order.numel())


def _npu_grouped_matmul(x, weight, group_list, split_item, group_type, group_list_type, **_):
    assert split_item == 2 and group_type == 0 and group_list_type == 1 and group_list.dtype == torch.int64
    (rows,), (w,) = x, weight  # w: [E, K, N]
    assert int(group_list.sum()) == rows.shape[0], "group_list must cover every row"
    out, start = [], 0
    for e, n in enumerate(group_list.tolist()):
        out.append(rows[start : start + n] @ w[e])
        start += n
    return [torch.cat(out)]


def _npu_moe_token_unpermute(permuted_tokens, sorted_indices, probs, **_):
    assert sorted_indices.dtype == torch.int32
    rows, k = probs.shape
    picked = permuted_tokens[sorted_indices.long()].reshape(rows, k, -1)
    return (picked.float() * probs.float().unsqueeze(-1)).sum(1).to(permuted_tokens.dtype)


# W8A8 as documented: dynamic per-token quantization (scale = row amax / 127, float32,
# shape x.shape[:-1]); the quantized matmul on an int8 [K, N] weight, with float32
# per-channel scale [N] and per-token scale [M], written in output_dtype.
def _npu_dynamic_quant(input, smooth_scales, group_index, dst_type, quant_mode, **_):
    assert smooth_scales is None and group_index is None and quant_mode == "pertoken" and dst_type is None
    xf = input.float()
    scale = xf.abs().amax(-1) / 127.0
    q = torch.round(xf / torch.where(scale > 0, scale, torch.ones_like(scale)).unsqueeze(-1))
    return q.clamp(-127, 127).to(torch.int8), scale


def _npu_quant_matmul(x1, x2, scale, pertoken_scale, bias, output_dtype, **_):
    assert x1.dtype == torch.int8 and x2.dtype == torch.int8, "x1 and x2 must be int8"
    assert x1.shape[-1] == x2.shape[0], "x2 must be [K, N]"
    assert scale.dtype == torch.float32 and scale.shape == (x2.shape[1],), "scale must be float32 [N]"
    assert pertoken_scale.dtype == torch.float32 and pertoken_scale.shape == (x1.shape[0],), "pertoken_scale [M]"
    assert output_dtype in (torch.float16, torch.bfloat16), "output_dtype must be float16 or bfloat16"
    assert bias is None
    acc = (x1.double() @ x2.double()).float()
    return (acc * pertoken_scale.unsqueeze(-1) * scale).to(output_dtype)


def _per_token(y):
    """int8 rows and float32 scale [M] of y, as npu_dynamic_quant computes them."""
    return _npu_dynamic_quant(y, None, None, None, "pertoken")


def _npu_add_rms_norm_dynamic_quant(x1, x2, gamma, smooth_scale1, smooth_scale2, beta, epsilon, output_mask, y_dtype):
    """(y1 int8, y2 int8, x_sum, scale1 [M], scale2 [M]); output_mask picks which of the two
    quantized outputs are computed (without smoothing scales, both quantize the same y)."""
    assert smooth_scale1 is None and smooth_scale2 is None and beta is None and y_dtype is None
    assert output_mask is not None and len(output_mask) == 2, "output_mask: two booleans"
    y, _, x_sum = _npu_add_rms_norm(x1, x2, gamma, epsilon)
    q, scale = _per_token(y)
    empty_q, empty_scale = q.new_empty(0), scale.new_empty(0)
    second = (q, scale) if output_mask[1] else (empty_q, empty_scale)
    return (q if output_mask[0] else empty_q), second[0], x_sum, (scale if output_mask[0] else empty_scale), second[1]


def _npu_swiglu_quant(x, smooth_scales, offsets, group_index, activate_left, quant_mode, group_list_type, dst_type):
    """quant_mode 1: dynamic per-token; activate_left: SiLU on the first half."""
    assert smooth_scales is None and offsets is None and group_index is None and dst_type is None
    assert quant_mode == 1, "static quantization needs smooth_scales"
    gate, up = x.chunk(2, dim=-1)
    if not activate_left:
        gate, up = up, gate
    return _per_token((torch.nn.functional.silu(gate.float()) * up.float()).to(x.dtype))


NUMERIC = {
    "npu_dynamic_quant": _npu_dynamic_quant,
    "npu_add_rms_norm_dynamic_quant": _npu_add_rms_norm_dynamic_quant,
    "npu_swiglu_quant": _npu_swiglu_quant,
    "npu_quant_matmul": _npu_quant_matmul,
    "npu_rms_norm": _npu_rms_norm,
    "npu_add_rms_norm": _npu_add_rms_norm,
    "npu_swiglu": _npu_swiglu,
    "npu_moe_gating_top_k_softmax": _npu_moe_gating_top_k_softmax,
    "npu_moe_init_routing_v2": _npu_moe_init_routing_v2,
    "npu_grouped_matmul": _npu_grouped_matmul,
    "npu_moe_token_unpermute": _npu_moe_token_unpermute,
}


class FakeOp:
    def __init__(self, schema):
        self.schema = schema

    def __call__(self, *args, **kwargs):
        bound = contract.bind(self.schema, args, kwargs)
        CALLS.append((self.schema.name, bound))
        impl = NUMERIC.get(self.schema.name)
        if impl is None:
            raise NotImplementedError(f"the fake torch_npu computes no result for {self.schema.name}")
        return impl(**bound)


def __getattr__(name: str):
    schema = contract.op_schemas().get(name)
    if schema is None:
        raise AttributeError(f"torch_npu has no attribute {name!r} (not in the torch-npu 2.13.0 schemas)")
    return FakeOp(schema)


fake_npu_runtime.install(CALLS)
