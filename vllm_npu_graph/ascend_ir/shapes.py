"""Which launches to lower: every kernel wrapper of ours, called with the NPU launch
table on the shapes of the models we support, recorded (not run) by `record`.

The constexpr choices (KV tile, split count, prefill tokens per tile, head blocks, ...)
are made by the wrappers themselves, so this list follows the launch code. What is
listed here is only the model-side variety: head sizes, GQA groups, cache block sizes,
dtypes, decode batch sizes (split-KV on/off) and prefill.
"""

from dataclasses import dataclass

import torch

from vllm_npu_graph.ascend_ir.record import recording
from vllm_npu_graph.kernels import attention_triton, fused_triton, moe_triton, quant_triton
from vllm_npu_graph.kernels.launch import ascend_table

# A 910B: 24 AI (cube) cores, 48 vector cores (what triton-ascend's driver reports).
TABLE = ascend_table(vector_cores=48, ai_cores=24)


@dataclass(frozen=True)
class Model:
    name: str
    hidden: int
    intermediate: int
    q_heads: int
    kv_heads: int
    head_size: int
    qk_norm: bool = False


# Supported architectures (Llama, Mistral, Qwen2, Qwen3) at tensor-parallel size 1,
# plus an odd head size.
MODELS = (
    Model("smollm2-135m", 576, 1536, 9, 3, 64),
    Model("llama2-7b", 4096, 11008, 32, 32, 128),
    Model("llama3-8b", 4096, 14336, 32, 8, 128),
    Model("qwen2.5-7b", 3584, 18944, 28, 4, 128),
    Model("qwen3-0.6b", 1024, 3072, 16, 8, 128, qk_norm=True),
    Model("qwen3-32b", 5120, 25600, 64, 8, 128, qk_norm=True),
    Model("head96", 3072, 8192, 32, 8, 96),
)
# MoE models (hidden, expert intermediate, experts, top-k) at tensor-parallel size 1.
MOE_MODELS = (
    ("qwen3-30b-a3b", 2048, 768, 128, 8),
    ("mixtral-8x7b", 4096, 14336, 8, 2),
    ("qwen2-57b-a14b", 3584, 2560, 64, 8),
)
# Attention is specialised on (head size, GQA group) only: the models' pairs plus
# every head size x group 1/4/8.
ATTENTION_SHAPES = sorted(
    {(m.head_size, m.q_heads // m.kv_heads) for m in MODELS} | {(d, g) for d in (64, 96, 128) for g in (1, 4, 8)}
)
BLOCK_SIZES = (16, 128)
DTYPES = (torch.float16, torch.bfloat16)
CONTEXT_BOUND = 8192  # tokens a block table row can address (the static decode bound)
# Whose IR is kept per kernel: Llama-3-8B's shape (D128, GQA 4), bf16, 128-token blocks.
REPRESENTATIVE = ("D128 G4 bs128 bf16", "llama3-8b bs128 bf16", "llama3-8b bs16 bf16", "moe qwen3-30b-a3b bf16")

_DT = {torch.float16: "fp16", torch.bfloat16: "bf16"}


def _kv_cache(blocks, block, kv_heads, d, dtype):
    """vLLM's per-layer view [blocks, kv_heads, block, 2D] of the token-major layout."""
    return torch.empty(blocks, block, kv_heads, 2 * d, dtype=dtype).transpose(1, 2)


def _attention(d, group, block, dtype):
    """(label, call) for decode with the most and the fewest KV splits and none, and prefill."""
    scale = d**-0.5

    def run(kv_heads, num_seqs, max_query_len):
        cache = _kv_cache(4, block, kv_heads, d, dtype)
        tokens = num_seqs * max_query_len
        q = torch.empty(tokens, kv_heads * group, d, dtype=dtype)
        qsl = torch.arange(0, tokens + 1, max_query_len, dtype=torch.int32)
        seq_lens = torch.full((num_seqs,), CONTEXT_BOUND, dtype=torch.int32)
        table = torch.zeros(num_seqs, CONTEXT_BOUND // block, dtype=torch.int32)
        attention_triton.paged_attention(
            q, cache, qsl, seq_lens, table, scale, None, max_query_len, table=TABLE, max_seq_len=CONTEXT_BOUND
        )

    # (KV heads, batch): a batch that fills the cube cores gets no KV split; one sequence
    # of one KV head (MQA or a tensor-parallel shard) the most; 8 KV heads at batch 1
    # and 2 fewer. The wrapper decides; these only cover the range.
    for kv_heads, num_seqs in ((8, TABLE.cube_programs), (1, 1), (8, 1), (8, 2)):
        yield f"decode kv{kv_heads} batch {num_seqs}", lambda h=kv_heads, n=num_seqs: run(h, n, 1)
    yield "prefill", lambda: run(8, 2, 300)


def _fused(model: Model, block, dtype):
    t = 64
    x = torch.empty(t, model.hidden, dtype=dtype)
    w = torch.empty(model.hidden, dtype=dtype)
    yield "rms_norm", lambda: fused_triton.rms_norm(x, w, 1e-6, table=TABLE)
    yield "add_rms_norm", lambda: fused_triton.add_rms_norm(x, x, w, 1e-6, table=TABLE)
    yield "swiglu", lambda: fused_triton.swiglu(torch.empty(t, 2 * model.intermediate, dtype=dtype), table=TABLE)
    # W8A8's fused quantize ops (torch_npu serves add + RMSNorm and SwiGLU; both are lowered too).
    yield "rms_norm_quant", lambda: quant_triton.rms_norm_quant(x, w, 1e-6, table=TABLE)
    yield "add_rms_norm_quant", lambda: quant_triton.add_rms_norm_quant(x, x, w, 1e-6, table=TABLE)
    gate_up = torch.empty(t, 2 * model.intermediate, dtype=dtype)
    yield "swiglu_quant", lambda: quant_triton.swiglu_quant(gate_up, table=TABLE)
    d, hq, hkv = model.head_size, model.q_heads, model.kv_heads
    qkv = torch.empty(t, (hq + 2 * hkv) * d, dtype=dtype)
    cos_sin = torch.empty(4096, d, dtype=dtype)
    norm = torch.empty(d, dtype=dtype) if model.qk_norm else None
    pos = torch.zeros(t, dtype=torch.int64)
    cache = _kv_cache(4, block, hkv, d, dtype)

    def rope(write):
        fused_triton.qkv_rope(
            qkv,
            pos,
            cos_sin,
            hq,
            hkv,
            d,
            norm,
            norm,
            1e-6,
            cache if write else None,
            torch.zeros(t, dtype=torch.int64) if write else None,
            table=TABLE,
        )

    yield (
        "kv write",
        lambda: attention_triton.write_kv_cache(
            torch.empty(t, hkv, d, dtype=dtype),
            torch.empty(t, hkv, d, dtype=dtype),
            cache,
            torch.zeros(t, dtype=torch.int64),
            TABLE,
        ),
    )
    yield "qkv_rope", lambda: rope(False)
    yield "qkv_rope+kv write", lambda: rope(True)


def _moe(hidden, inter, experts, top_k, dtype):
    """The routed experts at a decode batch (the kernels specialise on top-k, experts, dtype)."""
    tokens = 16
    x = torch.empty(tokens, hidden, dtype=dtype)
    ids = torch.zeros(tokens, top_k, dtype=torch.int32)
    w13, w2 = torch.empty(experts, 2 * inter, hidden, dtype=dtype), torch.empty(experts, hidden, inter, dtype=dtype)
    moe_triton.experts(x, torch.empty(tokens, top_k), ids, w13, w2, None, table=TABLE)


def calls():
    """(label, zero-argument call of a wrapper) for every specialisation we support."""
    for name, hidden, inter, experts, top_k in MOE_MODELS:
        for dtype in DTYPES:
            yield f"moe {name} {_DT[dtype]}", lambda a=(hidden, inter, experts, top_k, dtype): _moe(*a)
    for block in BLOCK_SIZES:
        for dtype in DTYPES:
            for d, group in ATTENTION_SHAPES:
                for what, call in _attention(d, group, block, dtype):
                    yield f"{what} D{d} G{group} bs{block} {_DT[dtype]}", call
            for model in MODELS:
                for what, call in _fused(model, block, dtype):
                    if block == BLOCK_SIZES[0] or what.endswith("kv write"):  # only these see the block
                        yield f"{what} {model.name} bs{block} {_DT[dtype]}", call


def launches():
    """(label, Launch) for every kernel launch the wrappers make on those calls."""
    out = []
    for label, call in calls():
        with recording() as recorded:
            call()
        out += [(label, launch) for launch in recorded]
    return out
