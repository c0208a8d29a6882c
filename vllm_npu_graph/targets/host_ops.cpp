// The host target's linear layer as a C++ op, so a replayed decode step runs its
// ~120 GEMMs without a Python frame each: the weight is packed for oneDNN once (vLLM's
// CPU build, `_C::create_onednn_mm_handler`) and every call is `_C::onednn_mm`.
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include <mutex>
#include <unordered_map>

namespace {

// One pack per weight storage, made on first use: a packed copy, so (as with vLLM's CPU
// build, which packs at load) weights must not change in place afterwards. The entry
// holds the weight, so its address can't be reused by another tensor while it exists.
struct Pack {
  at::Tensor handle;
  at::Tensor weight;
};

std::mutex packs_mutex;
std::unordered_map<const void*, Pack> packs;

const at::Tensor& pack_for(const at::Tensor& weight) {
  std::lock_guard<std::mutex> lock(packs_mutex);
  auto found = packs.find(weight.data_ptr());
  if (found != packs.end() && found->second.weight.sizes() == weight.sizes()) {
    return found->second.handle;
  }
  static auto create = c10::Dispatcher::singleton()
                           .findSchemaOrThrow("_C::create_onednn_mm_handler", "")
                           .typed<int64_t(const at::Tensor&, int64_t)>();
  at::Tensor handle = at::scalar_tensor(create.call(weight.t(), 32), at::kLong);
  return packs.insert_or_assign(weight.data_ptr(), Pack{handle, weight}).first->second.handle;
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  static auto onednn_mm =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("_C::onednn_mm", "")
          .typed<void(at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, const at::Tensor&)>();
  const at::Tensor& handle = pack_for(weight);
  auto sizes = x.sizes().vec();
  sizes.back() = weight.size(0);
  at::Tensor out = at::empty(sizes, x.options());
  at::Tensor rows = x.dim() == 2 ? x : x.reshape({-1, weight.size(1)});
  at::Tensor out_rows = out.dim() == 2 ? out : out.view({-1, weight.size(0)});
  onednn_mm.call(out_rows, rows, bias, handle);
  return out;
}

}  // namespace

TORCH_LIBRARY(npu_graph_host, m) {
  m.def("linear(Tensor x, Tensor weight, Tensor? bias) -> Tensor");
}

TORCH_LIBRARY_IMPL(npu_graph_host, CPU, m) {
  m.impl("linear", &linear);
}
