// The host target's linear layer as a C++ op, so a replayed decode step runs its
// ~120 GEMMs without a Python frame each. Several rows: the weight is packed for oneDNN
// once (vLLM's CPU build, `_C::create_onednn_mm_handler`) and every call is
// `_C::onednn_mm`. One row (batch-1 decode): a matrix-vector product that streams the
// weight once, both cores splitting its rows (AVX-512 or AVX2 + FMA, by the build's tier).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include <mutex>
#include <unordered_map>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define NPU_GRAPH_MATVEC 1
#endif

namespace {

#if defined(NPU_GRAPH_MATVEC)
// y[n] = w[n, :] . x (+ bias[n]) for rows [begin, end). At one token the product is
// bound by reading the weight (~540 MB a SmolLM2 step): each row is read front to back
// with a software prefetch 1 KiB ahead, which measured at the bandwidth of a plain
// reduction over the same bytes here; oneDNN's blocked GEMM reached ~80-90% of it.
// Built per CPU tier (host_isa.py): 16-float vectors on AVX-512, 8-float on AVX2 + FMA,
// 32 floats a step either way.
#if defined(__AVX512F__)
inline float dot32(const float* row, const float* x, int64_t k_size, int64_t& k) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  for (; k + 32 <= k_size; k += 32) {
    _mm_prefetch(reinterpret_cast<const char*>(row + k + 256), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(row + k + 272), _MM_HINT_T0);
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(row + k), _mm512_loadu_ps(x + k), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(row + k + 16), _mm512_loadu_ps(x + k + 16), acc1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}
#else
inline float dot32(const float* row, const float* x, int64_t k_size, int64_t& k) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  for (; k + 32 <= k_size; k += 32) {
    _mm_prefetch(reinterpret_cast<const char*>(row + k + 256), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(row + k + 272), _MM_HINT_T0);
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(row + k), _mm256_loadu_ps(x + k), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(row + k + 8), _mm256_loadu_ps(x + k + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(row + k + 16), _mm256_loadu_ps(x + k + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(row + k + 24), _mm256_loadu_ps(x + k + 24), acc3);
  }
  __m256 acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
  __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  half = _mm_add_ps(half, _mm_movehl_ps(half, half));
  half = _mm_add_ss(half, _mm_movehdup_ps(half));
  return _mm_cvtss_f32(half);
}
#endif

void matvec_rows(const float* x, const float* w, const float* bias, float* y, int64_t k_size, int64_t begin,
                 int64_t end) {
  for (int64_t n = begin; n < end; ++n) {
    const float* row = w + n * k_size;
    int64_t k = 0;
    float sum = dot32(row, x, k_size, k);
    for (; k < k_size; ++k) sum += row[k] * x[k];
    y[n] = bias ? sum + bias[n] : sum;
  }
}

bool matvec(at::Tensor& out, const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  if (x.size(0) != 1 || x.scalar_type() != at::kFloat || weight.scalar_type() != at::kFloat ||
      !weight.is_contiguous() || (bias && (bias->scalar_type() != at::kFloat || !bias->is_contiguous()))) {
    return false;
  }
  at::Tensor row = x.contiguous();
  const float* xp = row.data_ptr<float>();
  const float* wp = weight.data_ptr<float>();
  const float* bp = bias ? bias->data_ptr<float>() : nullptr;
  float* yp = out.data_ptr<float>();
  const int64_t k_size = weight.size(1);
  at::parallel_for(0, weight.size(0), 16, [&](int64_t begin, int64_t end) {
    matvec_rows(xp, wp, bp, yp, k_size, begin, end);
  });
  return true;
}
#else
bool matvec(at::Tensor&, const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&) { return false; }
#endif

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
  auto sizes = x.sizes().vec();
  sizes.back() = weight.size(0);
  at::Tensor out = at::empty(sizes, x.options());
  at::Tensor rows = x.dim() == 2 ? x : x.reshape({-1, weight.size(1)});
  if (rows.stride(-1) != 1) rows = rows.contiguous();  // oneDNN reads unit-stride rows only
  at::Tensor out_rows = out.dim() == 2 ? out : out.view({-1, weight.size(0)});
  if (!matvec(out_rows, rows, weight, bias)) {
    onednn_mm.call(out_rows, rows, bias, pack_for(weight));
  }
  return out;
}

}  // namespace

TORCH_LIBRARY(npu_graph_host, m) {
  m.def("linear(Tensor x, Tensor weight, Tensor? bias) -> Tensor");
}

TORCH_LIBRARY_IMPL(npu_graph_host, CPU, m) {
  m.impl("linear", &linear);
}
