"""Fused-op Triton kernels against their torch references, under the CPU interpreter."""

import os

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from vllm_npu_graph.kernels import fused_reference as ref  # noqa: E402
from vllm_npu_graph.kernels import fused_triton as tri  # noqa: E402
from vllm_npu_graph.kernels.launch import INTERPRETER_TABLE, LaunchTable  # noqa: E402

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}
CAPPED = LaunchTable(upcast_dot=True, vector_programs=3)  # Ascend-style: fewer programs than rows


def close(a, b, dtype):
    torch.testing.assert_close(a.float(), b.float(), atol=TOL[dtype], rtol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden, eps", [(64, 1e-6), (100, 1e-5)])
@pytest.mark.parametrize("table", [INTERPRETER_TABLE, CAPPED])
def test_rms_norm_and_add_rms_norm(dtype, hidden, eps, table):
    g = torch.Generator().manual_seed(1)
    x, r = torch.randn(7, hidden, generator=g).to(dtype), torch.randn(7, hidden, generator=g).to(dtype)
    w = (1 + 0.1 * torch.randn(hidden, generator=g)).to(dtype)
    close(tri.rms_norm(x, w, eps, table=table), ref.rms_norm(x, w, eps), dtype)
    y, s = tri.add_rms_norm(x, r, w, eps, table=table)
    y_ref, s_ref = ref.add_rms_norm(x, r, w, eps)
    close(s, s_ref, dtype)
    close(y, y_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inter", [64, 1500])
def test_swiglu(dtype, inter):
    x = torch.randn(5, 2 * inter, generator=torch.Generator().manual_seed(2)).to(dtype)
    close(tri.swiglu(x, table=CAPPED), ref.swiglu(x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "hq, hkv, d, rot, qk_norm", [(4, 2, 64, 64, False), (4, 1, 128, 128, True), (2, 2, 64, 32, False)]
)
def test_qkv_split_norm_rope(dtype, hq, hkv, d, rot, qk_norm):
    g = torch.Generator().manual_seed(3)
    t = 6
    qkv = torch.randn(t, (hq + 2 * hkv) * d, generator=g).to(dtype)
    positions = torch.tensor([0, 1, 5, 17, 100, 3])
    inv_freq = 1.0 / (10000 ** (torch.arange(0, rot, 2).float() / rot))
    freqs = torch.outer(torch.arange(128).float(), inv_freq)
    cache = torch.cat([freqs.cos(), freqs.sin()], dim=-1).to(dtype)
    qw = (1 + 0.1 * torch.randn(d, generator=g)).to(dtype) if qk_norm else None
    kw = (1 + 0.1 * torch.randn(d, generator=g)).to(dtype) if qk_norm else None
    got = tri.qkv_rope(qkv, positions, cache, hq, hkv, d, qw, kw, 1e-6, table=CAPPED)
    want = ref.qkv_rope(qkv, positions, cache, hq, hkv, d, qw, kw, 1e-6)
    for a, b in zip(got, want):
        close(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_qkv_rope_with_kv_cache_write(dtype):
    """The folded form: rotated keys and values also land in their cache slots (padding
    slot -1 and tokens past the slot mapping write nothing)."""
    g = torch.Generator().manual_seed(4)
    t, hq, hkv, d, block = 7, 4, 2, 32, 16
    qkv = torch.randn(t, (hq + 2 * hkv) * d, generator=g).to(dtype)
    positions = torch.tensor([0, 1, 2, 40, 41, 3, 0])
    freqs = torch.outer(torch.arange(64).float(), 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d)))
    cache = torch.cat([freqs.cos(), freqs.sin()], dim=-1).to(dtype)
    slots = torch.tensor([0, 1, 2, 40, 41, -1])  # token 6 is beyond the mapping
    kv = torch.randn(4, block, hkv, 2 * d, generator=g).to(dtype).transpose(1, 2)
    kv_ref, before = kv.clone(), kv.clone()
    got = tri.qkv_rope(qkv, positions, cache, hq, hkv, d, None, None, 1e-6, kv, slots, table=CAPPED)
    want = ref.qkv_rope(qkv, positions, cache, hq, hkv, d, None, None, 1e-6, kv_ref, slots)
    for a, b in zip(got, want):
        close(a, b, dtype)
    close(kv, kv_ref, dtype)
    close(kv[2, :, 8, :d], want[1][3], dtype)  # token 3's rotated key at slot 40 (block 2, offset 8)
    close(kv[2, :, 8, d:], want[2][3], dtype)
    written = torch.zeros(4, block, dtype=torch.bool)
    written.view(-1)[slots[slots >= 0]] = True
    assert torch.equal(kv.transpose(1, 2)[~written], before.transpose(1, 2)[~written])  # nothing else
