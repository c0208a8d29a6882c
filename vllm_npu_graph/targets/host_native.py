"""The host target's native ops: what vLLM's CPU build ships, as torch_npu's fused ops
are the NPU's. Our custom ops dispatch here when the host's kernels choice is `native`.

- Linear layers: our C++ op (targets/host_ops.cpp). 1-4 rows (small decode batches) on
  x86 are its own kernel; more rows use weights packed once for oneDNN (vLLM's
  `create_onednn_mm_handler`), then `onednn_mm` per call: 2-3x faster than an unpacked
  GEMM at decode sizes here. F.linear if the op could not be built.
- RMSNorm, add+RMSNorm, SwiGLU (the fusion passes' ops): vLLM's C++ kernels.
- Mixture-of-experts: vLLM's CPU fused-MoE kernel on weights prepacked at load.
- Greedy sampling: vLLM CPU's argmax kernel (worker/sampler.py).
- W8A8 linears: vLLM CPU's dynamic per-token int8 quantization; the GEMM is our C++
  op on the int8 weight as loaded (one row: our int8 matrix-vector kernel; more rows:
  vLLM's oneDNN int8 GEMM on a pack made on first use). Without the C++ op, the oneDNN
  pack is made at load and its handle (an int64 scalar tensor, scales folded in) is what
  the layer holds as its weight.
- Paged attention and the KV-cache write: vLLM's C++ CPU attention. It reads every
  length from the tensors (its work schedule is built from `seq_lens` inside the op,
  per call), so a decode graph replays it at any context. Its cache keeps a block's
  keys then its values ([block, head] = K[block_size, D] + V[block_size, D]), which
  needs the head-major physical layout; our other kernels never read this cache.
"""

import torch
import vllm._custom_ops  # noqa: F401  (registers vLLM's CPU ops under torch.ops._C)

from vllm_npu_graph.kernels import fused_reference, moe_reference

_C = torch.ops._C


def _isa(block_size: int, head_size: int) -> str:
    """vLLM's CPU attention ISA for fp32/fp16 caches on x86: 16-token vectors unless
    both the block and the head size are multiples of 32."""
    return "vec" if block_size % 32 == 0 and head_size % 32 == 0 else "vec16"


def linear_impl():
    """x @ weight.T (+ bias): the C++ op, whose oneDNN pack per weight storage is shared by
    every caller (the compiled decoder's linears and the LM head), or F.linear."""
    from vllm_npu_graph.targets import host_ops

    return torch.ops.npu_graph_host.linear.default if host_ops.load() else torch.nn.functional.linear


_attn = _C.cpu_attention_with_kv_cache.default
_schedule = _C.get_scheduler_metadata.default
_write = _C.cpu_attn_reshape_and_cache.default
# (cache address, shape) -> views; the views hold the cache, so the address stays its.
_caches: dict[tuple[int, torch.Size], tuple[torch.Tensor, torch.Tensor, str]] = {}


def _split_cache(kv_cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(keys, values, isa) views of one layer's cache, made once per cache tensor."""
    key = (kv_cache.data_ptr(), kv_cache.shape)
    views = _caches.get(key)
    if views is None:
        blocks, heads, block_size, two_d = kv_cache.shape
        halves = kv_cache.view(blocks, heads, 2 * block_size, two_d // 2)
        views = _caches[key] = (halves[:, :, :block_size], halves[:, :, block_size:], _isa(block_size, two_d // 2))
    return views


def write_kv_cache(key, value, kv_cache, slot_mapping) -> None:
    """Slots -1 (padding) are skipped by the op itself."""
    key_cache, value_cache, isa = _split_cache(kv_cache)
    n = slot_mapping.shape[0]
    _write(key[:n], value[:n], key_cache, value_cache, slot_mapping, isa)


def paged_attention(
    query, kv_cache, query_start_loc, seq_lens, block_table, scale, window, max_query_len, max_seq_len
) -> torch.Tensor:
    """Causal attention of each request's query tokens over its cached sequence; rows
    of no request are zero. Host ints unused: the op schedules from the tensors."""
    out = torch.zeros_like(query)
    num_reqs = seq_lens.shape[0]
    if num_reqs == 0:
        return out
    key_cache, value_cache, isa = _split_cache(kv_cache)
    window = -1 if window is None else window
    schedule = _schedule(
        num_reqs,
        query.shape[1],
        kv_cache.shape[1],
        query.shape[2],
        seq_lens,
        query.dtype,
        query_start_loc,
        True,
        window,
        isa,
        False,
        None,
    )
    _attn(
        query,
        key_cache,
        value_cache,
        out,
        query_start_loc,
        seq_lens,
        scale,
        True,
        None,
        window,
        block_table,
        0.0,
        schedule,
        None,
        None,
    )
    return out


# vLLM's CPU norm and activation kernels take float32 rows of whole vectors (its AVX2
# build rounds to bfloat16 by truncation); other rows run the torch reference.
ROW_ALIGN = 32


def _vllm_rows(x: torch.Tensor, width: int) -> bool:
    return x.dtype == torch.float32 and width % ROW_ALIGN == 0


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if not _vllm_rows(x, x.shape[-1]):
        return fused_reference.rms_norm(x, weight, eps)
    out = torch.empty_like(x)
    _C.rms_norm(out, x.contiguous(), weight, eps)
    return out


def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float):
    """(rms_norm(x + residual), x + residual) from vLLM's in-place op, on copies (ours is
    functional)."""
    if not _vllm_rows(x, x.shape[-1]):
        return fused_reference.add_rms_norm(x, residual, weight, eps)
    normed, summed = x.contiguous().clone(), residual.contiguous().clone()
    _C.fused_add_rms_norm(normed, summed, weight, eps)
    return normed, summed


def swiglu(x: torch.Tensor) -> torch.Tensor:
    if not _vllm_rows(x, x.shape[-1] // 2):
        return fused_reference.swiglu(x)
    out = x.new_empty(*x.shape[:-1], x.shape[-1] // 2)
    _C.silu_and_mul(out, x.contiguous())
    return out


# vLLM's portable CPU MoE kernel (every x86 tier); it needs hidden and intermediate
# sizes in multiples of 32 (intermediate is zero-padded at load; silu(0) * 0 adds 0).
MOE_ISA = "vec"
MOE_ALIGN = 32


def moe_pack_weights(w13: torch.Tensor, w2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad each expert's intermediate size to 32 and prepack both weights for
    `cpu_fused_moe`; unchanged (the reference reads them) when the hidden size does not fit."""
    num_experts, two_i, hidden = w13.shape
    if hidden % MOE_ALIGN:
        return w13, w2
    inter = two_i // 2
    padded = -(-inter // MOE_ALIGN) * MOE_ALIGN
    if padded != inter:
        w13_padded = w13.new_zeros(num_experts, 2 * padded, hidden)
        w13_padded[:, :inter] = w13[:, :inter]
        w13_padded[:, padded : padded + inter] = w13[:, inter:]
        w2_padded = w2.new_zeros(num_experts, hidden, padded)
        w2_padded[:, :, :inter] = w2
        w13, w2 = w13_padded, w2_padded
    packed = []
    for weight in (w13.contiguous(), w2.contiguous()):
        out = torch.empty_like(weight)
        _C.prepack_moe_weight(weight, out, MOE_ISA)
        packed.append(out)
    return packed[0], packed[1]


def moe_experts(x, topk_weights, topk_ids, w13, w2, expert_map) -> torch.Tensor:
    """vLLM CPU's fused MoE: routes rows to experts inside the kernel (nothing read back
    to Python), weighted sum included."""
    if x.shape[-1] % MOE_ALIGN:
        return moe_reference.experts(x, topk_weights, topk_ids, w13, w2, expert_map)
    weights, ids = moe_reference.local_routing(topk_weights, topk_ids, expert_map)
    out = torch.empty_like(x)
    _C.cpu_fused_moe(out, x.contiguous(), w13, w2, None, None, weights.float(), ids, False, "silu", MOE_ISA)
    return out


def greedy_argmax(logits: torch.Tensor) -> torch.Tensor:
    """vLLM CPU's kernel on float32 logits (the first index of each row's maximum, as
    torch's argmax); other dtypes torch's."""
    if logits.dtype != torch.float32:
        return logits.argmax(dim=-1).view(-1)
    return _C.greedy_argmax(logits.contiguous())


def quant_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.contiguous()
    q = torch.empty_like(x, dtype=torch.int8)
    scale = torch.empty(x.shape[0], 1, dtype=torch.float32)
    _C.dynamic_scaled_int8_quant(q, x, scale, None)
    return q, scale


def pack_int8_weight(w: torch.Tensor, w_scale: torch.Tensor, out_dtype: torch.dtype):
    """The int8 weight as loaded for the C++ op; without it, oneDNN's packed int8 weight
    with its per-channel scales and the output dtype (the handler object frees the pack
    when collected, so the layer keeps it)."""
    from vllm import _custom_ops as ops

    from vllm_npu_graph.targets import host_ops

    if host_ops.load():
        return w.contiguous(), None
    handler = ops.create_onednn_scaled_mm(w.t(), w_scale.view(-1, 1), out_dtype, True, False, 32)
    return handler.handler_tensor, handler


def int8_linear(x_q, x_scale, w, w_scale, bias, out_dtype) -> torch.Tensor:
    if w.dtype == torch.int8:  # the weight as loaded: the C++ op
        return torch.ops.npu_graph_host.int8_linear(x_q, x_scale, w, w_scale, bias, out_dtype)
    out = torch.empty(x_q.shape[0], w_scale.shape[0], dtype=out_dtype)
    _C.onednn_scaled_mm(out, x_q, x_scale, None, None, bias, w)
    return out


def fused_quant_ops() -> dict:
    """Our C++ fused quantize ops; without them, vLLM CPU's norm / activation, then its
    quantization."""
    from vllm_npu_graph.ops.quant import FUSED_FAKES
    from vllm_npu_graph.targets import host_ops

    if host_ops.load():
        return {name: getattr(torch.ops.npu_graph_host, name) for name in FUSED_FAKES}

    def add_rms_norm_quant(x, residual, weight, eps):
        normed, summed = add_rms_norm(x, residual, weight, eps)
        return (*quant_per_token(normed), summed)

    return {
        "rms_norm_quant": lambda x, weight, eps: quant_per_token(rms_norm(x, weight, eps)),
        "add_rms_norm_quant": add_rms_norm_quant,
        "swiglu_quant": lambda x: quant_per_token(swiglu(x)),
    }


def cache_and_attend_ops() -> dict:
    """A layer's KV write, schedule and attention as one C++ call (host_ops.cpp), the same
    kernels as write_kv_cache + paged_attention; without the C++ ops, those two."""
    from vllm_npu_graph.targets import host_ops

    return {"cache_and_attend": torch.ops.npu_graph_host.cache_and_attend.default} if host_ops.load() else {}


def native_ops() -> dict:
    return {
        **cache_and_attend_ops(),
        **fused_quant_ops(),
        "quant_per_token": quant_per_token,
        "int8_linear": int8_linear,
        "pack_int8_weight": pack_int8_weight,
        "greedy_argmax": greedy_argmax,
        "moe_experts": moe_experts,
        "moe_pack_weights": moe_pack_weights,
        "linear": linear_impl(),
        "paged_attention": paged_attention,
        "write_kv_cache": write_kv_cache,
        "rms_norm": rms_norm,
        "add_rms_norm": add_rms_norm,
        "swiglu": swiglu,
    }
