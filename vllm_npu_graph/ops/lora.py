"""Our LoRA ops (npu_graph:: ops, see ops/library.py): each token's adapter delta of a
linear (all its output slices in one op, so a decoder of hundreds of adapted linears
stays a graph the compiler handles in reasonable time) and the expand of an embedding.
Opaque to the compiler on purpose: the adapter weights change in place whenever vLLM
loads an adapter into a slot, so no pass may treat them as constant weights (the
linear pass packs those once). One kernel on every target (kernels/lora_reference.py:
dense GEMMs and a mask, which the NPU runs on its cube units as any matmul)."""

from vllm_npu_graph.kernels import lora_reference
from vllm_npu_graph.ops.library import op


def _linear_fake(x, indices, a_stacked, b_stacked, scale):
    return x.new_empty(x.shape[0], sum(b.shape[2] for b in b_stacked))


@op(
    "lora_linear(Tensor x, Tensor indices, Tensor[] a_stacked, Tensor[] b_stacked, float scale) -> Tensor",
    fake=_linear_fake,
)
def lora_linear(x, indices, a_stacked, b_stacked, scale):
    return lora_reference.lora_linear(x, indices, a_stacked, b_stacked, scale)


def _expand_fake(h, indices, b_stacked):
    return h.new_empty(h.shape[0], b_stacked.shape[2])


@op("lora_expand(Tensor h, Tensor indices, Tensor b_stacked) -> Tensor", fake=_expand_fake)
def lora_expand(h, indices, b_stacked):
    return lora_reference.lora_expand(h, indices, b_stacked)
