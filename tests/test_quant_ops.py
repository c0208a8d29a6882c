"""The W8A8 ops (ops/quant.py): the host's native kernels (vLLM CPU's int8 quantization,
our C++ int8 GEMM: one row our matrix-vector kernel, more rows oneDNN's int8 GEMM)
against the torch reference, and the offline quantizer."""

import pytest
import torch

from vllm_npu_graph.kernels import quant_reference as ref
from vllm_npu_graph.ops import kernel_choice, quant
from vllm_npu_graph.targets import host_native

SHAPES = [(1, 576, 1536), (1, 100, 37), (7, 64, 96), (16, 1536, 576)]


@pytest.fixture
def native():
    kernel_choice.configure(None, host_native.native_ops())
    yield
    kernel_choice.configure(None)


@pytest.mark.parametrize("m, k, n", SHAPES)
def test_host_kernels_equal_the_reference(native, m, k, n):
    g = torch.Generator().manual_seed(m)
    x = torch.randn(m, k, generator=g)
    x[0, 3] = 80.0  # an outlier channel sets the row's scale
    w, w_scale = ref.quantize_weight(torch.randn(n, k, generator=g) * 0.05)
    bias = torch.randn(n, generator=g)
    x_q, x_scale = quant.quant_per_token(x)
    ref_q, ref_scale = ref.quant_per_token(x)
    assert torch.equal(x_q, ref_q) and torch.equal(x_scale, ref_scale)
    packed, keep = quant.pack_int8_weight(w, w_scale.view(-1), torch.float32)
    assert torch.equal(packed, w) and keep is None  # the C++ op takes the weight as loaded
    got = quant.int8_linear(x_q, x_scale, packed, w_scale.view(-1), bias, torch.float32)
    want = ref.int8_linear(ref_q, ref_scale, w.t(), w_scale.view(-1), bias, torch.float32)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_zero_row_quantizes_to_zeros():
    q, scale = ref.quant_per_token(torch.zeros(2, 8))
    assert not q.any() and torch.equal(scale, torch.ones(2, 1))


def test_quantization_error_is_half_a_step_at_most():
    x = torch.randn(4, 256)
    q, scale = ref.quant_per_token(x)
    assert ((q.float() * scale - x).abs() <= scale / 2 + 1e-6).all()


def test_smoothing_leaves_the_float_model_unchanged(tiny_model):
    """SmoothQuant moves activation range into the weights; the float function is the same."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vllm_npu_graph.quantize import smooth_model

    folder = tiny_model("qwen3")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = torch.tensor([list(range(100, 140))])
    with torch.no_grad():
        before = model(ids).logits
        smooth_model(model, AutoTokenizer.from_pretrained(folder))
        after = model(ids).logits
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
