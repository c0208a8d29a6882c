"""bench/roofline.py's weight bytes a token, against the models' sizes worked out by hand
from their dimensions."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import roofline  # noqa: E402

F32 = 4


def test_dense_tied_model_reads_every_weight_and_its_embedding_as_the_head(default_model):
    hidden, layers, vocab, mlp, kv = 576, 30, 49152, 1536, 3 * 64  # SmolLM2-135M
    layer = 2 * hidden * hidden + 2 * kv * hidden + 3 * mlp * hidden + 2 * hidden
    assert roofline.weight_bytes_per_token(default_model) == F32 * (layers * layer + hidden + vocab * hidden)


def test_moe_model_reads_top_k_routed_experts_the_shared_expert_and_the_head_not_the_embedding(tiny_model):
    hidden, vocab, kv, experts, top_k, expert, shared = 128, 49152, 2 * 32, 6, 2, 64, 96  # tiny Qwen2-MoE
    attention = 2 * hidden * hidden + 2 * kv * hidden + hidden + 2 * kv  # q, o, k, v; q/k/v biases
    moe = experts * hidden + 3 * shared * hidden + hidden + top_k * 3 * expert * hidden  # router, shared + gate
    layer = attention + moe + 2 * hidden
    assert roofline.weight_bytes_per_token(tiny_model("qwen2_moe")) == F32 * (2 * layer + hidden + vocab * hidden)


def test_a_half_precision_engine_reads_half_the_float_bytes(default_model):
    assert 2 * roofline.weight_bytes_per_token(default_model, float_bytes=2) == roofline.weight_bytes_per_token(
        default_model
    )
