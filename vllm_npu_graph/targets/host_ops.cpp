// The host target's linear layers as C++ ops, so a replayed decode step runs its
// ~120 GEMMs without a Python frame each. Several rows: the weight is packed for oneDNN
// once (vLLM's CPU build: `_C::create_onednn_mm_handler`, or for W8A8
// `_C::create_onednn_scaled_mm_handler`) and every call is `_C::onednn_mm` /
// `_C::onednn_scaled_mm`. One to four rows (small decode batches): a kernel that streams
// the weight once, both cores splitting its rows (AVX-512 or AVX2 + FMA, by the build's
// tier); one int8 row: an int8 matrix-vector kernel (AVX2, or AVX-512 VNNI where an
// AVX-512 build finds it). W8A8's per-token quantization folded into the RMSNorm /
// add + RMSNorm / SwiGLU before it (the quant fusion passes' ops). A layer's KV-cache
// write and attention: vLLM CPU's kernels in one call.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define NPU_GRAPH_MATVEC 1
#endif

namespace {

#if defined(NPU_GRAPH_MATVEC)
// y[m, n] = x[m, :] . w[n, :] (+ bias[n]) for a few rows (decode batches of 1-4 tokens).
// Bound by reading the weight (~540 MB a SmolLM2 step): it is streamed once, four weight
// rows at a time with a software prefetch 1 KiB ahead, and each row of x is multiplied
// against them while they are in L1, both cores splitting the weight's rows. oneDNN's
// packed GEMM reached 77-96% of its rate at 2-4 rows, MKL's gemv 105% at one (SmolLM2's
// layers, 2-core Intel SPR). Built per CPU tier (host_isa.py): 16-float vectors and 4x4
// tiles on AVX-512, 8-float vectors and 2x4 tiles on AVX2 + FMA (16 registers).
#if defined(__AVX512F__)
using Vec = __m512;
constexpr int kLanes = 16, kTileRows = 4;
inline Vec vzero() { return _mm512_setzero_ps(); }
inline Vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline float vsum(Vec v) { return _mm512_reduce_add_ps(v); }
#else
using Vec = __m256;
constexpr int kLanes = 8, kTileRows = 2;
inline Vec vzero() { return _mm256_setzero_ps(); }
inline Vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline float vsum(Vec v) {
  __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  half = _mm_add_ps(half, _mm_movehl_ps(half, half));
  return _mm_cvtss_f32(_mm_add_ss(half, _mm_movehdup_ps(half)));
}
#endif
constexpr int kTileCols = 4;     // weight rows per tile
constexpr int64_t kFewRows = 4;  // up to this many rows of x; more go to oneDNN

struct FewRows {
  const float* x;
  int64_t ldx;
  const float* w;
  int64_t k_size;
  float* y;
  int64_t ldy;
  const float* bias;
};

// Rows [m, m + M) of x against weight rows [n, n + N); the first pass over the weight
// rows (m == 0) prefetches them.
template <int M, int N>
inline void tile(const FewRows& a, int64_t m, int64_t n) {
  const float* x = a.x + m * a.ldx;
  const float* w = a.w + n * a.k_size;
  const int64_t k_size = a.k_size;
  Vec acc[M][N];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) acc[i][j] = vzero();
  int64_t k = 0;
  for (; k + kLanes <= k_size; k += kLanes) {
    Vec wv[N];
    for (int j = 0; j < N; ++j) {
      if (m == 0) _mm_prefetch(reinterpret_cast<const char*>(w + j * k_size + k + 256), _MM_HINT_T0);
      wv[j] = vload(w + j * k_size + k);
    }
    for (int i = 0; i < M; ++i) {
      const Vec xv = vload(x + i * a.ldx + k);
      for (int j = 0; j < N; ++j) acc[i][j] = vfma(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      float sum = vsum(acc[i][j]);
      for (int64_t r = k; r < k_size; ++r) sum += x[i * a.ldx + r] * w[j * k_size + r];
      a.y[(m + i) * a.ldy + n + j] = a.bias ? sum + a.bias[n + j] : sum;
    }
  }
}

template <int N>
void weight_rows(const FewRows& a, int64_t m_size, int64_t n) {
  int64_t m = 0;
  for (; m + kTileRows <= m_size; m += kTileRows) tile<kTileRows, N>(a, m, n);
  switch (m_size - m) {  // fewer rows left than a tile
    case 3:
      if constexpr (kTileRows > 3) tile<3, N>(a, m, n);
      break;
    case 2:
      if constexpr (kTileRows > 2) tile<2, N>(a, m, n);
      break;
    case 1:
      tile<1, N>(a, m, n);
      break;
  }
}

bool few_rows(at::Tensor& out, const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  if (x.size(0) > kFewRows || x.scalar_type() != at::kFloat || weight.scalar_type() != at::kFloat ||
      !weight.is_contiguous() || x.stride(1) != 1 ||
      (bias && (bias->scalar_type() != at::kFloat || !bias->is_contiguous()))) {
    return false;
  }
  const int64_t m_size = x.size(0), n_size = weight.size(0);
  const FewRows a{x.data_ptr<float>(), x.stride(0),           weight.data_ptr<float>(), weight.size(1),
                  out.data_ptr<float>(), out.stride(0), bias ? bias->data_ptr<float>() : nullptr};
  const int64_t tiles = (n_size + kTileCols - 1) / kTileCols;
  at::parallel_for(0, tiles, 4, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t * kTileCols;
      if (n + kTileCols <= n_size) {
        weight_rows<kTileCols>(a, m_size, n);
      } else {
        for (int64_t r = n; r < n_size; ++r) weight_rows<1>(a, m_size, r);
      }
    }
  });
  return true;
}

// W8A8 at one token: int32 dot products of the int8 row and the int8 activations
// (exact: each int8 x int8 pair is summed in int32, as oneDNN's int8 GEMM does), then
// scaled by the token's and the channel's scales. A quarter of the float weight's bytes.
inline int32_t dot_int8(const int8_t* row, const int16_t* x, int64_t k_size) {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
  int64_t k = 0;
  for (; k + 32 <= k_size; k += 32) {
    _mm_prefetch(reinterpret_cast<const char*>(row + k + 1024), _MM_HINT_T0);
    __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k)));
    __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k + 16)));
    acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(w0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k))));
    acc1 = _mm256_add_epi32(acc1,
                            _mm256_madd_epi16(w1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k + 16))));
  }
  __m256i acc = _mm256_add_epi32(acc0, acc1);
  __m128i half = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  half = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0x4e));
  half = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0xb1));
  int32_t sum = _mm_cvtsi128_si32(half);
  for (; k < k_size; ++k) sum += int32_t(row[k]) * int32_t(x[k]);
  return sum;
}

#if defined(__AVX512F__)
// The same dot product with AVX-512 VNNI (64 int8 pairs an instruction), chosen at run
// time on an AVX-512 build: VNNI multiplies unsigned by signed bytes, so the activations
// go in shifted by 128 (xu = x + 128) and 128 * sum(row) comes off again, the row's sum
// taken by the same instruction against ones. Still exact int32.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) int32_t dot_int8_vnni(const int8_t* row, const uint8_t* xu,
                                                                               const int16_t* x, int64_t k_size) {
  __m512i acc = _mm512_setzero_si512(), sums = _mm512_setzero_si512();
  const __m512i ones = _mm512_set1_epi8(1);
  int64_t k = 0;
  for (; k + 64 <= k_size; k += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(row + k + 1024), _MM_HINT_T0);
    const __m512i w = _mm512_loadu_si512(row + k);
    acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(xu + k), w);
    sums = _mm512_dpbusd_epi32(sums, ones, w);
  }
  int32_t sum = _mm512_reduce_add_epi32(acc) - 128 * _mm512_reduce_add_epi32(sums);
  for (; k < k_size; ++k) sum += int32_t(row[k]) * int32_t(x[k]);
  return sum;
}

#endif

// Whether int8 multiply-adds may use VNNI: the CPU has it (AVX-512 builds only) and no
// oneDNN cap below it is set (ONEDNN_MAX_CPU_ISA, which a forced lower tier sets:
// host_isa.py), so our kernel and oneDNN's take the same road.
bool vnni_allowed() {
#if defined(__AVX512F__)
  static const bool allowed = [] {
    if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512bw")) return false;
    const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
    const std::string c = cap ? cap : "";
    return !(c == "SSE41" || c == "AVX" || c == "AVX2" || c == "AVX512_CORE");
  }();
  return allowed;
#else
  return false;
#endif
}

// Our int8 GEMM, exact for any number of rows: each weight row is read once and dotted
// with every activation row while it is in L1. oneDNN's int8 GEMM is used instead for
// several rows only where VNNI is allowed: without it oneDNN multiply-adds u8 x s8 pairs
// into int16 with saturation (vpmaddubsw), which gave wrong outputs on AVX2 machines.
bool int8_rows(at::Tensor& out, const at::Tensor& x_q, const at::Tensor& x_scale, const at::Tensor& weight,
               const at::Tensor& w_scale, const std::optional<at::Tensor>& bias) {
  const int64_t m_size = x_q.size(0);
  if ((m_size > 1 && vnni_allowed()) || out.scalar_type() != at::kFloat || !weight.is_contiguous() ||
      x_scale.scalar_type() != at::kFloat || x_scale.numel() != m_size || w_scale.scalar_type() != at::kFloat ||
      !w_scale.is_contiguous() || (bias && (bias->scalar_type() != at::kFloat || !bias->is_contiguous()))) {
    return false;
  }
  const int64_t k_size = weight.size(1), n_size = weight.size(0);
  std::vector<int16_t> x(m_size * k_size);
  const at::Tensor xq_c = x_q.contiguous();
  const int8_t* xq = xq_c.data_ptr<int8_t>();
  for (int64_t i = 0; i < m_size * k_size; ++i) x[i] = xq[i];
  const at::Tensor token_scales = x_scale.contiguous();
  const float* ts = token_scales.data_ptr<float>();
  const int8_t* wp = weight.data_ptr<int8_t>();
  const float* sp = w_scale.data_ptr<float>();
  const float* bp = bias ? bias->data_ptr<float>() : nullptr;
  float* yp = out.data_ptr<float>();
#if defined(__AVX512F__)
  const bool vnni = vnni_allowed();
  std::vector<uint8_t> xu(vnni ? m_size * k_size : 0);
  for (int64_t i = 0; i < int64_t(xu.size()); ++i) xu[i] = uint8_t(int32_t(xq[i]) + 128);
#endif
  at::parallel_for(0, n_size, 16, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const int8_t* row = wp + n * k_size;
      for (int64_t m = 0; m < m_size; ++m) {
        const int16_t* xm = x.data() + m * k_size;
#if defined(__AVX512F__)
        const int32_t dot = vnni ? dot_int8_vnni(row, xu.data() + m * k_size, xm, k_size) : dot_int8(row, xm, k_size);
#else
        const int32_t dot = dot_int8(row, xm, k_size);
#endif
        float y = float(dot) * ts[m] * sp[n];
        yp[m * n_size + n] = bp ? y + bp[n] : y;
      }
    }
  });
  return true;
}
#else
bool few_rows(at::Tensor&, const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&) { return false; }
bool int8_rows(at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
               const std::optional<at::Tensor>&) {
  return false;
}
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

template <typename Create>
const at::Tensor& pack_for(const at::Tensor& weight, Create create) {
  std::lock_guard<std::mutex> lock(packs_mutex);
  auto found = packs.find(weight.data_ptr());
  if (found != packs.end() && found->second.weight.sizes() == weight.sizes()) {
    return found->second.handle;
  }
  at::Tensor handle = at::scalar_tensor(create(), at::kLong);
  return packs.insert_or_assign(weight.data_ptr(), Pack{handle, weight}).first->second.handle;
}

at::Tensor output_for(const at::Tensor& x, int64_t n, at::ScalarType dtype) {
  auto sizes = x.sizes().vec();
  sizes.back() = n;
  return at::empty(sizes, x.options().dtype(dtype));
}

// Where oneDNN has no matmul for a half dtype ("could not create a primitive descriptor":
// bfloat16 and float16 on AVX2, float16 without AVX512-FP16) a half-precision weight is
// widened to float32 once (kept like a pack), each call's rows widened, its output
// rounded back.
std::unordered_map<const void*, Pack> widened_weights;

const at::Tensor& widened(const at::Tensor& weight) {
  std::lock_guard<std::mutex> lock(packs_mutex);
  auto found = widened_weights.find(weight.data_ptr());
  if (found != widened_weights.end() && found->second.weight.sizes() == weight.sizes()) {
    return found->second.handle;
  }
  return widened_weights.insert_or_assign(weight.data_ptr(), Pack{weight.to(at::kFloat).contiguous(), weight})
      .first->second.handle;
}

// float16 matmuls need AVX512-FP16 in oneDNN (Sapphire Rapids; not Zen 4), bfloat16 ones
// AVX-512: below that, and under a forced tier's oneDNN cap, our linear widens.
bool onednn_matmul_in(at::ScalarType dtype) {
#if defined(__AVX512F__)
  if (dtype != at::kHalf) return true;
  static const bool fp16 = [] {
    const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
    const std::string c = cap ? cap : "";
    return __builtin_cpu_supports("avx512fp16") && (c.empty() || c == "ALL" || c.find("AMX") != std::string::npos ||
                                                     c == "AVX512_CORE_FP16");
  }();
  return fp16;
#else
  return dtype == at::kFloat;
#endif
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  if (!onednn_matmul_in(x.scalar_type())) {
    const std::optional<at::Tensor> wide_bias = bias ? std::optional<at::Tensor>(bias->to(at::kFloat)) : std::nullopt;
    return (linear)(x.to(at::kFloat), widened(weight), wide_bias).to(x.scalar_type());  // ours, not at::linear
  }
  static auto onednn_mm =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("_C::onednn_mm", "")
          .typed<void(at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, const at::Tensor&)>();
  static auto create = c10::Dispatcher::singleton()
                           .findSchemaOrThrow("_C::create_onednn_mm_handler", "")
                           .typed<int64_t(const at::Tensor&, int64_t)>();
  at::Tensor out = output_for(x, weight.size(0), x.scalar_type());
  at::Tensor rows = x.dim() == 2 ? x : x.reshape({-1, weight.size(1)});
  if (rows.stride(-1) != 1) rows = rows.contiguous();  // oneDNN reads unit-stride rows only
  at::Tensor out_rows = out.dim() == 2 ? out : out.view({-1, weight.size(0)});
  if (!few_rows(out_rows, rows, weight, bias)) {
    onednn_mm.call(out_rows, rows, bias, pack_for(weight, [&] { return create.call(weight.t(), 32); }));
  }
  return out;
}

// x_q [M, K] int8 (per-token scales x_scale [M, 1]) times weight [N, K] int8 (per-channel
// scales w_scale [N]), the weight as loaded: packed for oneDNN on first use.
at::Tensor int8_linear(const at::Tensor& x_q, const at::Tensor& x_scale, const at::Tensor& weight,
                       const at::Tensor& w_scale, const std::optional<at::Tensor>& bias, at::ScalarType out_dtype) {
  static auto scaled_mm = c10::Dispatcher::singleton()
                              .findSchemaOrThrow("_C::onednn_scaled_mm", "")
                              .typed<void(at::Tensor&, const at::Tensor&, const at::Tensor&,
                                          const std::optional<at::Tensor>&, const std::optional<at::Tensor>&,
                                          const std::optional<at::Tensor>&, const at::Tensor&)>();
  static auto create = c10::Dispatcher::singleton()
                           .findSchemaOrThrow("_C::create_onednn_scaled_mm_handler", "")
                           .typed<int64_t(const at::Tensor&, const at::Tensor&, at::ScalarType, bool, bool, int64_t)>();
  at::Tensor out = output_for(x_q, weight.size(0), out_dtype);
  at::Tensor rows = out.view({-1, weight.size(0)});
  if (!int8_rows(rows, x_q.reshape({-1, weight.size(1)}), x_scale, weight, w_scale, bias)) {
    const at::Tensor& handle =
        pack_for(weight, [&] { return create.call(weight.t(), w_scale.view({-1, 1}), out_dtype, true, false, 32); });
    scaled_mm.call(out, x_q.contiguous(), x_scale, std::nullopt, std::nullopt, bias, handle);
  }
  return out;
}

// The fused quantize ops: vLLM CPU's vectorized RMSNorm / add + RMSNorm / SiLU-and-mul
// write the rows in the model's dtype (what the unfused graph stores), then each row is
// quantized as the reference does: scale = amax / 127 (1 for a zero row), q = y / scale
// rounded half to even. One op call from the graph instead of two.
template <typename T>
float quantize_row(const T* y, int64_t n, int8_t* q) {
  float amax = 0.f;
  int64_t i = 0;
#if defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) {
    const __m256 sign = _mm256_set1_ps(-0.f);
    __m256 vmax = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(y + i)));
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
  }
#endif
  for (; i < n; ++i) amax = std::max(amax, std::fabs(float(y[i])));
  const float scale = amax > 0.f ? amax / 127.f : 1.f;
  i = 0;
#if defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) {
    const __m256 vscale = _mm256_set1_ps(scale), hi = _mm256_set1_ps(127.f), lo = _mm256_set1_ps(-127.f);
    for (; i + 8 <= n; i += 8) {
      __m256 v = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(y + i), vscale),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);  // half to even
      __m256i v32 = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
      __m128i v16 = _mm_packs_epi32(_mm256_castsi256_si128(v32), _mm256_extracti128_si256(v32, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), _mm_packs_epi16(v16, v16));
    }
  }
#endif
  for (; i < n; ++i) q[i] = int8_t(std::min(std::max(std::nearbyint(float(y[i]) / scale), -127.f), 127.f));
  return scale;
}

using QuantPair = std::tuple<at::Tensor, at::Tensor>;

QuantPair quantize_rows(const at::Tensor& y) {
  const int64_t rows = y.size(0), n = y.size(1);
  at::Tensor q = at::empty({rows, n}, y.options().dtype(at::kChar));
  at::Tensor scale = at::empty({rows, 1}, y.options().dtype(at::kFloat));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, y.scalar_type(), "quantize_rows", [&] {
    const scalar_t* yp = y.data_ptr<scalar_t>();
    at::parallel_for(0, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        scale.data_ptr<float>()[row] = quantize_row(yp + row * n, n, q.data_ptr<int8_t>() + row * n);
      }
    });
  });
  return {q, scale};
}

c10::Dispatcher& dispatcher() { return c10::Dispatcher::singleton(); }

// vLLM's CPU kernels take float32 rows of whole vectors (its AVX2 build rounds to
// bfloat16 by truncation); other rows compute as the torch reference does (float32, then
// the model's dtype, rounded to nearest).
constexpr int64_t kVllmRowAlign = 32;

bool vllm_rows(const at::Tensor& x, int64_t width) { return x.scalar_type() == at::kFloat && width % kVllmRowAlign == 0; }

at::Tensor rms_norm_rows(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor xf = x.to(at::kFloat);
  return (xf * at::rsqrt(xf.pow(2).mean(-1, true) + eps) * weight.to(at::kFloat)).to(x.scalar_type());
}

QuantPair rms_norm_quant(const at::Tensor& x_in, const at::Tensor& weight, double eps) {
  static auto rms_norm = dispatcher()
                             .findSchemaOrThrow("_C::rms_norm", "")
                             .typed<void(at::Tensor&, at::Tensor&, std::optional<at::Tensor>, double)>();
  at::Tensor x = x_in.contiguous();
  if (!vllm_rows(x, x.size(1))) return quantize_rows(rms_norm_rows(x, weight, eps));
  at::Tensor normed = at::empty_like(x);
  rms_norm.call(normed, x, weight, eps);
  return quantize_rows(normed);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> add_rms_norm_quant(const at::Tensor& x, const at::Tensor& residual,
                                                                  const at::Tensor& weight, double eps) {
  static auto fused_add_rms_norm =
      dispatcher()
          .findSchemaOrThrow("_C::fused_add_rms_norm", "")
          .typed<void(at::Tensor&, at::Tensor&, std::optional<at::Tensor>, double)>();
  if (!vllm_rows(x, x.size(1))) {
    const at::Tensor summed = (x.to(at::kFloat) + residual.to(at::kFloat)).to(x.scalar_type());
    auto [q, scale] = quantize_rows(rms_norm_rows(summed, weight, eps));
    return {q, scale, summed};
  }
  at::Tensor normed = x.contiguous().clone(), summed = residual.contiguous().clone();  // vLLM's op is in place
  fused_add_rms_norm.call(normed, summed, weight, eps);
  auto [q, scale] = quantize_rows(normed);
  return {q, scale, summed};
}

QuantPair swiglu_quant(const at::Tensor& x_in) {
  static auto silu_and_mul =
      dispatcher().findSchemaOrThrow("_C::silu_and_mul", "").typed<void(at::Tensor&, at::Tensor&)>();
  at::Tensor x = x_in.contiguous();
  const int64_t n = x.size(1) / 2;
  if (!vllm_rows(x, n)) {
    return quantize_rows((at::silu(x.slice(1, 0, n).to(at::kFloat)) * x.slice(1, n).to(at::kFloat)).to(x.scalar_type()));
  }
  at::Tensor act = at::empty({x.size(0), n}, x.options());
  silu_and_mul.call(act, x);
  return quantize_rows(act);
}

// One layer's KV-cache write and attention on vLLM CPU's kernels, in one call from the
// graph's attention op (a replayed step otherwise spends ~a dozen Python-level calls a
// layer around ~20 us of kernels). kv_cache [blocks, kv_heads, block_size, 2 * head]
// holds a block's keys, then its values; padding slots (-1) are skipped by the write,
// rows of no request are zero; the work schedule is built from the tensors, per call.
at::Tensor cache_and_attend(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                            const at::Tensor& kv_cache, const std::optional<at::Tensor>& slot_mapping,
                            const at::Tensor& query_start_loc, const at::Tensor& seq_lens,
                            const at::Tensor& block_table, double scale, int64_t window) {
  static auto write = dispatcher()
                          .findSchemaOrThrow("_C::cpu_attn_reshape_and_cache", "")
                          .typed<void(const at::Tensor&, const at::Tensor&, at::Tensor&, at::Tensor&,
                                      const at::Tensor&, const std::string&, double, double, const std::string&)>();
  static auto schedule = dispatcher()
                             .findSchemaOrThrow("_C::get_scheduler_metadata", "")
                             .typed<at::Tensor(int64_t, int64_t, int64_t, int64_t, const at::Tensor&,
                                               at::ScalarType, const at::Tensor&, bool, int64_t, const std::string&,
                                               bool, const std::optional<at::Tensor>&, const std::string&)>();
  static auto attend =
      dispatcher()
          .findSchemaOrThrow("_C::cpu_attention_with_kv_cache", "")
          .typed<void(const at::Tensor&, const at::Tensor&, const at::Tensor&, at::Tensor&, const at::Tensor&,
                      const at::Tensor&, double, bool, const std::optional<at::Tensor>&, c10::SymInt,
                      const at::Tensor&, double, const at::Tensor&, const std::optional<at::Tensor>&,
                      const std::optional<at::Tensor>&, double, double, const std::string&)>();
  const int64_t blocks = kv_cache.size(0), kv_heads = kv_cache.size(1), block_size = kv_cache.size(2);
  const int64_t head = kv_cache.size(3) / 2;
  const at::Tensor halves = kv_cache.view({blocks, kv_heads, 2 * block_size, head});
  at::Tensor key_cache = halves.narrow(2, 0, block_size), value_cache = halves.narrow(2, block_size, block_size);
  static const std::string vec = "vec", vec16 = "vec16", cache_dtype = "auto";
  const std::string& isa = block_size % 32 == 0 && head % 32 == 0 ? vec : vec16;  // vLLM CPU's vector width
  if (slot_mapping) {
    const int64_t n = slot_mapping->size(0);
    write.call(key.narrow(0, 0, n), value.narrow(0, 0, n), key_cache, value_cache, *slot_mapping, isa, 1.0, 1.0,
               cache_dtype);
  }
  at::Tensor out = at::zeros_like(query);
  const int64_t reqs = seq_lens.size(0);
  if (reqs > 0) {
    const at::Tensor plan = schedule.call(reqs, query.size(1), kv_heads, head, seq_lens, query.scalar_type(),
                                          query_start_loc, true, window, isa, false, std::nullopt, cache_dtype);
    attend.call(query, key_cache, value_cache, out, query_start_loc, seq_lens, scale, true, std::nullopt,
                c10::SymInt(window), block_table, 0.0, plan, std::nullopt, std::nullopt, 1.0, 1.0, cache_dtype);
  }
  return out.flatten(1);
}

}  // namespace

TORCH_LIBRARY(npu_graph_host, m) {
  m.def("linear(Tensor x, Tensor weight, Tensor? bias) -> Tensor");
  m.def(
      "int8_linear(Tensor x_q, Tensor x_scale, Tensor w, Tensor w_scale, Tensor? bias, ScalarType out_dtype) -> "
      "Tensor");
  m.def("rms_norm_quant(Tensor x, Tensor weight, float eps) -> (Tensor, Tensor)");
  m.def("add_rms_norm_quant(Tensor x, Tensor residual, Tensor weight, float eps) -> (Tensor, Tensor, Tensor)");
  m.def("swiglu_quant(Tensor x) -> (Tensor, Tensor)");
  m.def(
      "cache_and_attend(Tensor query, Tensor key, Tensor value, Tensor(a!) kv_cache, Tensor? slot_mapping, "
      "Tensor query_start_loc, Tensor seq_lens, Tensor block_table, float scale, int window) -> Tensor");
}

TORCH_LIBRARY_IMPL(npu_graph_host, CPU, m) {
  m.impl("linear", &linear);
  m.impl("int8_linear", &int8_linear);
  m.impl("rms_norm_quant", &rms_norm_quant);
  m.impl("add_rms_norm_quant", &add_rms_norm_quant);
  m.impl("swiglu_quant", &swiglu_quant);
  m.impl("cache_and_attend", &cache_and_attend);
}
