"""The fused quantize ops (RMSNorm / add + RMSNorm / SwiGLU + per-token int8) of the
host target (our C++ ops) and of the NPU target's Triton kernels (CPU interpreter)
against the unfused torch reference: the op before, then `quant_per_token`.

Tolerance, stated: the residual sum is bit for bit; the int8 values equal the
reference's or differ by one quantization step, at <= 1% of the entries in float32 and
<= 3% in float16 / bfloat16 (an RMSNorm or SiLU summed in another order moves a value by
an ulp of the model's dtype, which can cross a rounding boundary; a bfloat16 ulp near the
row's largest value is half a step); scales within 1e-5 relative in float32 and one ulp
in float16 / bfloat16 (the row's largest value). The fused torch reference is the
unfused one composed, so on the reference kernels the fusion passes change nothing.
Float16 / bfloat16 rows, and rows not a multiple of 32 wide, take the host ops' own
path (vLLM's kernels need whole vectors, and its AVX2 build truncates to bfloat16)."""

import os
from functools import partial

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from vllm_npu_graph.kernels import fused_reference as fref  # noqa: E402
from vllm_npu_graph.kernels import quant_reference as ref  # noqa: E402
from vllm_npu_graph.kernels import quant_triton  # noqa: E402
from vllm_npu_graph.kernels.launch import LaunchTable  # noqa: E402
from vllm_npu_graph.targets import host_native, host_ops  # noqa: E402

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
CAPPED = LaunchTable(vector_programs=3)  # Ascend-style: fewer programs than rows


def host_impls():
    assert host_ops.load(), "the host target's C++ ops did not build"
    return host_native.fused_quant_ops()


def triton_impls():
    return {
        name: partial(getattr(quant_triton, name), table=CAPPED)
        for name in ("rms_norm_quant", "add_rms_norm_quant", "swiglu_quant")
    }


IMPLS = {"host C++": host_impls, "triton": triton_impls}
# Triton's CPU interpreter casts float32 to bfloat16 by truncation (a device rounds to
# nearest, as torch does), so a bfloat16 row there is a different row: Triton runs
# float32 and float16 here.
CASES = [(impl, dtype) for impl in IMPLS for dtype in DTYPES if (impl, dtype) != ("triton", torch.bfloat16)]


def inputs(rows, width, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, width, generator=g)
    x[0, width // 3] = 40.0  # an outlier sets the row's scale
    if rows > 2:
        x[2] = 0.0  # a zero row: scale 1, all zeros
    return x.to(dtype), torch.randn(rows, width, generator=g).to(dtype), (1 + 0.1 * torch.randn(width, generator=g))


def assert_quantized_like(got, want, dtype=torch.float32):
    (q, scale), (q_ref, scale_ref) = got, want
    assert q.dtype == torch.int8 and q.shape == q_ref.shape and scale.shape == scale_ref.shape == (q.shape[0], 1)
    steps = (q.int() - q_ref.int()).abs()
    share = 0.01 if dtype == torch.float32 else 0.03
    assert steps.max() <= 1 and steps.float().mean() <= share, f"{int((steps > 0).sum())} of {q.numel()} differ"
    # the row's largest value may be one ulp of the model's dtype off
    torch.testing.assert_close(
        scale, scale_ref, rtol=1e-5 if dtype == torch.float32 else torch.finfo(dtype).eps, atol=0
    )


@pytest.mark.parametrize("impl, dtype", CASES)
@pytest.mark.parametrize("rows, hidden", [(1, 576), (5, 100), (16, 1024)])
def test_rms_norm_quant_and_add_rms_norm_quant(impl, dtype, rows, hidden):
    ops = IMPLS[impl]()
    x, r, w = inputs(rows, hidden, dtype, seed=hidden)
    w = w.to(dtype)
    assert_quantized_like(ops["rms_norm_quant"](x, w, 1e-5), ref.quant_per_token(fref.rms_norm(x, w, 1e-5)), dtype)
    q, scale, summed = ops["add_rms_norm_quant"](x, r, w, 1e-6)
    normed, summed_ref = fref.add_rms_norm(x, r, w, 1e-6)
    assert torch.equal(summed, summed_ref)
    assert_quantized_like((q, scale), ref.quant_per_token(normed), dtype)


@pytest.mark.parametrize("impl, dtype", CASES)
@pytest.mark.parametrize("rows, inter", [(1, 1536), (5, 37), (7, 1500)])
def test_swiglu_quant(impl, dtype, rows, inter):
    x, _, _ = inputs(rows, 2 * inter, dtype, seed=inter)
    assert_quantized_like(IMPLS[impl]()["swiglu_quant"](x), ref.quant_per_token(fref.swiglu(x)), dtype)


def test_the_host_ops_match_the_unfused_host_path():
    """What the graph computed before the fusion: vLLM CPU's norm / SiLU-mul, then its
    per-token quantization."""
    ops = host_impls()
    x, r, w = inputs(2, 576, torch.float32, seed=3)  # no zero row: vLLM's scale for one is 0, ours 1
    assert_quantized_like(
        ops["rms_norm_quant"](x, w, 1e-5), host_native.quant_per_token(host_native.rms_norm(x, w, 1e-5))
    )
    normed, _ = host_native.add_rms_norm(x, r, w, 1e-5)
    assert_quantized_like(ops["add_rms_norm_quant"](x, r, w, 1e-5)[:2], host_native.quant_per_token(normed))
    gate_up = torch.cat([x, r], dim=1)
    assert_quantized_like(ops["swiglu_quant"](gate_up), host_native.quant_per_token(host_native.swiglu(gate_up)))


def test_triton_rounds_half_to_even_as_torch_does():
    """Ties go to the even step, as torch.round does; a plain floor(v + 0.5) gets them
    wrong, and 0.49999997 + 0.5 rounds up to 1.0 in float32."""
    import triton
    import triton.language as tl

    @triton.jit
    def round_kernel(v_ptr, out_ptr, n, N_PAD: tl.constexpr):
        c = tl.arange(0, N_PAD)
        tl.store(out_ptr + c, quant_triton._round_half_even(tl.load(v_ptr + c, mask=c < n)), mask=c < n)

    v = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 126.5, -126.5, 3.5000002, 7.0])
    out = torch.empty_like(v)
    round_kernel[(1,)](v, out, v.numel(), N_PAD=16)
    assert out.tolist() == torch.round(v).tolist()


def test_the_unfused_host_ops_take_any_row_width():
    """vLLM's CPU kernels need whole vectors: a width of 100 runs the torch reference."""
    x, r, w = inputs(3, 100, torch.float32, seed=4)

    def norm(v):  # written out here, in float64: not the reference the op falls back to
        v = v.double()
        return (v / (v.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt() * w.double()).float()

    torch.testing.assert_close(host_native.rms_norm(x, w, 1e-6), norm(x))
    normed, summed = host_native.add_rms_norm(x, r, w, 1e-6)
    torch.testing.assert_close(summed, x + r)
    torch.testing.assert_close(normed, norm(x + r))
    gate, up = x.double(), r.double()
    torch.testing.assert_close(host_native.swiglu(torch.cat([x, r], 1)), (gate * torch.sigmoid(gate) * up).float())
