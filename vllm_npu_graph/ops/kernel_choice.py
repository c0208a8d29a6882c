"""Which implementation each of our custom ops runs in this process: the torch
reference, the Triton kernels (with a launch table), or the target's native fused ops.

Resolved once by `configure` (the worker calls it at start-up), so an op call on the
decode path is one dict lookup: no import, branch or attribute search per layer.
"""

from collections.abc import Callable
from functools import partial

import torch

from vllm_npu_graph.kernels.launch import LaunchTable

# op name -> callable. paged_attention takes (query, kv_cache, query_start_loc,
# seq_lens, block_table, scale, window, max_query_len, max_seq_len).
impls: dict[str, Callable] = {}
launch_table: LaunchTable | None = None  # the Triton launch table in use, if any


def configure(table: LaunchTable | None, native: dict[str, Callable] | None = None) -> None:
    global impls, launch_table
    if table is None:
        from vllm_npu_graph.kernels import attention_reference as attn
        from vllm_npu_graph.kernels import fused_reference as fused

        resolved = {
            "paged_attention": lambda q, kv, qsl, lens, bt, scale, window, max_q, max_s: attn.paged_attention(
                q, kv, qsl, lens, bt, scale, window, max_q, max_s
            ),
            "write_kv_cache": attn.write_kv_cache,
            "linear": torch.nn.functional.linear,
            "rms_norm": fused.rms_norm,
            "add_rms_norm": fused.add_rms_norm,
            "swiglu": fused.swiglu,
            "qkv_rope": fused.qkv_rope,
        }
    else:
        from vllm_npu_graph.kernels import attention_triton as attn
        from vllm_npu_graph.kernels import fused_triton as fused

        resolved = {
            "paged_attention": lambda q, kv, qsl, lens, bt, scale, window, max_q, max_s: attn.paged_attention(
                q, kv, qsl, lens, bt, scale, window, max_q, table=table, max_seq_len=max_s
            ),
            "write_kv_cache": partial(attn.write_kv_cache, table=table),
            "linear": torch.nn.functional.linear,
            "rms_norm": partial(fused.rms_norm, table=table),
            "add_rms_norm": partial(fused.add_rms_norm, table=table),
            "swiglu": partial(fused.swiglu, table=table),
            "qkv_rope": partial(fused.qkv_rope, table=table),
        }
    from vllm_npu_graph.kernels import moe_reference, moe_triton, quant_reference, quant_triton

    resolved.update(
        moe_topk_softmax=moe_reference.topk_softmax,  # softmax + top-k: plain device ops
        moe_experts=moe_reference.experts if table is None else partial(moe_triton.experts, table=table),
        moe_pack_weights=lambda w13, w2: (w13, w2),
        greedy_argmax=lambda logits: logits.argmax(dim=-1).view(-1),
        quant_per_token=quant_reference.quant_per_token,
        int8_linear=quant_reference.int8_linear,
        pack_int8_weight=lambda w, w_scale, out_dtype: (w.t().contiguous(), None),  # [K, N]
        **{
            name: getattr(quant_reference, name) if table is None else partial(getattr(quant_triton, name), table=table)
            for name in ("rms_norm_quant", "add_rms_norm_quant", "swiglu_quant")
        },
    )
    resolved.update(native or {})
    impls, launch_table = resolved, table


configure(None)  # the reference until a worker chooses
