// Backend conformance (after llama.cpp's tests/test-backend-ops.cpp): every engine::Backend op, on every backend
// of the registry (RegisteredBackends(), engine/backend_registry.cc), against plain references written here --
// loops in double over the exact values of the inputs, never a backend's own kernels. Tests are named
// <Op>/<Op>Test.MatchesReference/<backend>_<case>; a backend without a device here skips its cases.
//
// What is compared: integer outputs (k, expert ids, gathered/clamped/embedded values, the KV cache slots)
// exactly; floats within the tolerance stated per op (|got - ref| <= atol + rtol * |ref|, or for dot products
// relative to sum |x * w|); any NaN fails. Every failure message carries the backend, the case and its seed.
// The routing cases are built so that routing decisions are exact on any backend: activations are multiples of
// 1/2 and gate weights multiples of 1/32 (|value| <= 1, exact in BF16/F16/F32), so every routing logit is an
// exact fp32 number whatever the summation order, equal logits tie exactly (ties go to the lower index) and
// distinct ones differ by >= 1/64. Top-p thresholds sit halfway between two cumulative masses, >= 5e-4 away.
//
// The suite can fail (checked by hand on the CPU backend; repeat after changing a case):
//  - kernels/cpu/norm.cc NormRow, `sum / static_cast<float>(p.dim) + p.eps` -> `- p.eps`: fails
//    RmsNorm/RmsNormTest.MatchesReference/cpu_f32_t3_d48_tiny_x only (the case where eps is not negligible;
//    with eps 1e-5 against mean(x^2) ~ 3 the sign is below the 1e-5 tolerance);
//  - kernels/cpu/moe_routing.cc TopOrder, ties to the higher index (`: a < b` -> `: a > b`): fails 11 Moe cases
//    (topk_e64_t6_k_equals_e, topk_e60_t9_random_k_with_zero, topk_e60_t7_tied_logits, adak_e60_t9,
//    adak_e64_t8_tied, adak_sample_e64_t9, null_without_null_rows_e8, topp_e60_t9,
//    topp_e64_t5_renorm_flag_ignored, mixed_e60_t17, mixed_e64_t33_tied) on k_out / ids_out / out.
// To repeat: make the edit, `TARGETS=engine_backend_conformance_test bash scripts/build.sh`,
// `build/tests/engine_backend_conformance_test | grep FAILED`, revert.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <ostream>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/dtype.h"
#include "engine/backend.h"
#include "engine/tensor_view.h"
#include "gtest/gtest.h"
#include "kernels/cpu/moe_routing.h"

namespace adak::engine {
namespace {

using kernels::RoutePolicy;
using kernels::TokenRoute;

// ---- Backends under test ----

std::vector<std::string> BackendNames() {
  std::vector<std::string> names;
  for (const BackendRegistration& r : RegisteredBackends()) names.emplace_back(r.name);
  return names;
}

// ---- Host data: values exactly representable in their dtype, so references use them as they are ----

// A host matrix [rows, cols] stored in `dtype`, with the exact value of every element in `values`.
struct HostMatrix {
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<std::byte> bytes;
  std::vector<double> values;  // [rows * cols]

  [[nodiscard]] double at(int64_t r, int64_t c) const { return values[static_cast<size_t>(r * cols + c)]; }
};

// Rounds v to dtype and stores it at element i.
void Store(HostMatrix& m, size_t i, float v) {
  switch (m.dtype) {
    case DType::kBF16: {
      const uint16_t b = F32ToBf16(v);
      std::memcpy(m.bytes.data() + 2 * i, &b, 2);
      m.values[i] = Bf16ToF32(b);
      return;
    }
    case DType::kF16: {
      const uint16_t h = F32ToF16(v);
      std::memcpy(m.bytes.data() + 2 * i, &h, 2);
      m.values[i] = F16ToF32(h);
      return;
    }
    default:
      std::memcpy(m.bytes.data() + 4 * i, &v, 4);
      m.values[i] = v;
      return;
  }
}

// Uniform in [-scale, scale], rounded to dtype; with `grid` > 0, multiples of 1/grid instead.
HostMatrix RandomMatrix(DType dtype, int64_t rows, int64_t cols, std::mt19937_64& rng, float scale, int grid = 0) {
  HostMatrix m;
  m.dtype = dtype;
  m.rows = rows;
  m.cols = cols;
  m.bytes.resize(static_cast<size_t>(rows * cols) * DTypeSize(dtype));
  m.values.resize(static_cast<size_t>(rows * cols));
  std::uniform_real_distribution<float> u(-scale, scale);
  for (size_t i = 0; i < m.values.size(); ++i) {
    float v = u(rng);
    if (grid > 0) v = std::round(v * static_cast<float>(grid)) / static_cast<float>(grid);
    Store(m, i, v);
  }
  return m;
}

std::vector<float> RandomFloats(size_t n, std::mt19937_64& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

std::string DTypeTag(DType t) {
  std::string s(DTypeName(t));
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// ---- Comparison ----

// Expects |got[i] - ref[i]| <= atol + rtol * |ref[i]| (or <= bound[i] when bounds are given) and no NaN; reports
// the first few mismatches.
void ExpectClose(std::span<const float> got, std::span<const double> ref, double atol, double rtol,
                 const std::string& what, std::span<const double> bounds = {}) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  int reported = 0;
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = bounds.empty() ? atol + rtol * std::abs(ref[i]) : bounds[i];
    const double err = std::abs(static_cast<double>(got[i]) - ref[i]);
    if (!std::isnan(got[i]) && !std::isnan(ref[i]) && err <= tol) continue;
    ++bad;
    if (reported++ < 5) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", reference " << ref[i] << " (|diff| " << err
                    << " > tolerance " << tol << ")";
    }
  }
  if (bad > 5) ADD_FAILURE() << what << ": " << bad << " of " << got.size() << " elements differ";
}

template <class T>
void ExpectEqualSeq(std::span<const T> got, std::span<const T> want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    // Bit-exact on purpose: -0.0 vs 0.0 and NaN payloads count as differences.
    if (std::memcmp(&got[i], &want[i], sizeof(T)) == 0) continue;  // NOLINT(bugprone-suspicious-memory-comparison)
    if (reported++ < 5) ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i];
  }
}

double Silu(double g) { return g / (1.0 + std::exp(-g)); }
double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// ---- The fixture: one backend, device memory helpers ----

template <class Case>
class OpTest : public ::testing::TestWithParam<std::tuple<std::string, Case>> {
 protected:
  void SetUp() override {
    const std::string& name = std::get<0>(this->GetParam());
    const BackendRegistration* reg = FindBackend(name);
    ASSERT_NE(reg, nullptr) << name;
    if (!reg->available()) GTEST_SKIP() << "backend " << name << " has no device here";
    absl::StatusOr<std::unique_ptr<Backend>> b = CreateBackend(name, {.num_threads = 2});
    ASSERT_TRUE(b.ok()) << b.status();
    backend_ = *std::move(b);
  }

  [[nodiscard]] const Case& c() const { return std::get<1>(this->GetParam()); }
  [[nodiscard]] std::string Trace() const {
    return absl::StrCat("backend=", std::get<0>(this->GetParam()), " case=", c().name, " seed=", c().seed);
  }

  // Device memory of `bytes`, zeroed by the allocator or not (filled by the caller).
  void* Alloc(size_t bytes) {
    absl::StatusOr<std::unique_ptr<DeviceBuffer>> b = backend_->Allocate(std::max<size_t>(bytes, 4));
    EXPECT_TRUE(b.ok()) << b.status();
    if (!b.ok()) return nullptr;
    buffers_.push_back(*std::move(b));
    return buffers_.back()->data();
  }
  template <class T>
  T* Put(const std::vector<T>& host) {
    void* d = Alloc(host.size() * sizeof(T));
    EXPECT_TRUE(backend_->Upload(host.data(), host.size() * sizeof(T), d).ok());
    return static_cast<T*>(d);
  }
  template <class T>
  std::vector<T> Get(const void* device, size_t n) {
    std::vector<T> host(n);
    EXPECT_TRUE(backend_->Synchronize().ok());
    EXPECT_TRUE(backend_->Download(device, n * sizeof(T), host.data()).ok());
    return host;
  }
  // A device f32 tensor [rows, cols] with row stride `stride`, holding `host` ([rows * stride]).
  Tensor PutF32(const std::vector<float>& host, int64_t rows, int64_t cols, int64_t stride) {
    return Tensor{Put(host), DType::kF32, rows, cols, stride};
  }
  // A weight through PrepareWeight (host memory stays alive in the fixture for the zero-copy CPU backend).
  Tensor Weight(const HostMatrix& m, bool vector = false) {
    TensorView v;
    v.data = m.bytes.data();
    v.dtype = m.dtype;
    v.shape = vector ? std::vector<int64_t>{m.cols} : std::vector<int64_t>{m.rows, m.cols};
    v.name = "test";
    absl::StatusOr<Tensor> t = backend_->PrepareWeight(v);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : Tensor{};
  }

  std::unique_ptr<Backend> backend_;
  std::vector<std::unique_ptr<DeviceBuffer>> buffers_;
};

template <class Case>
std::string CaseName(const ::testing::TestParamInfo<std::tuple<std::string, Case>>& info) {
  return std::get<0>(info.param) + "_" + std::get<1>(info.param).name;
}

#define ADAK_PRINT_CASE(Type) \
  [[maybe_unused]] void PrintTo(const Type& c, std::ostream* os) { *os << c.name << " (seed " << c.seed << ")"; }

// Instantiates Test over backend x case, named <Op>/<Test>.MatchesReference/<backend>_<case>.
#define ADAK_INSTANTIATE(Op, Test, Case, cases) \
  INSTANTIATE_TEST_SUITE_P(                     \
      Op, Test, ::testing::Combine(::testing::ValuesIn(BackendNames()), ::testing::ValuesIn(cases)), CaseName<Case>)

// ---- Embedding: out[t] = table[ids[t]], exact ----

struct EmbeddingCase {
  std::string name;
  uint64_t seed = 1;
  DType dtype = DType::kF32;
  int64_t vocab = 50, hidden = 24, tokens = 7;
};
ADAK_PRINT_CASE(EmbeddingCase)

std::vector<EmbeddingCase> EmbeddingCases() {
  std::vector<EmbeddingCase> cases;
  for (DType d : {DType::kF32, DType::kBF16, DType::kF16}) {
    cases.push_back({DTypeTag(d) + "_t7", 11, d, 50, 24, 7});
    cases.push_back({DTypeTag(d) + "_t1_h37", 12, d, 9, 37, 1});
  }
  return cases;
}

using EmbeddingTest = OpTest<EmbeddingCase>;

TEST_P(EmbeddingTest, MatchesReference) {
  SCOPED_TRACE(Trace());
  std::mt19937_64 rng(c().seed);
  const HostMatrix table = RandomMatrix(c().dtype, c().vocab, c().hidden, rng, 2.0f);
  std::vector<int32_t> ids(static_cast<size_t>(c().tokens));
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(c().vocab - 1));
  for (int32_t& id : ids) id = pick(rng);
  if (ids.size() > 2) ids[2] = ids[0];  // a repeated id
  const Tensor out = PutF32(std::vector<float>(static_cast<size_t>(c().tokens * c().hidden), -7.0f), c().tokens,
                            c().hidden, c().hidden);
  backend_->Embedding(Weight(table), Put(ids), out);
  const std::vector<float> got = Get<float>(out.data, static_cast<size_t>(c().tokens * c().hidden));
  std::vector<double> ref;
  for (int32_t id : ids) {
    for (int64_t i = 0; i < c().hidden; ++i) ref.push_back(table.at(id, i));
  }
  ExpectClose(got, ref, 0.0, 0.0, "embedding");
}

ADAK_INSTANTIATE(Embedding, EmbeddingTest, EmbeddingCase, EmbeddingCases());

// ---- RmsNorm: out = x / sqrt(mean(x^2) + eps) * w; tolerance 1e-6 + 1e-5 |ref| ----

struct RmsNormCase {
  std::string name;
  uint64_t seed = 1;
  DType w_dtype = DType::kF32;
  int64_t rows = 5, dim = 64, x_stride = 64;
  float eps = 1e-5f;
  bool in_place = false;
};
ADAK_PRINT_CASE(RmsNormCase)

std::vector<RmsNormCase> RmsNormCases() {
  std::vector<RmsNormCase> cases;
  for (DType d : {DType::kF32, DType::kBF16, DType::kF16}) {
    cases.push_back({DTypeTag(d) + "_t5_d64", 21, d, 5, 64, 64, 1e-5f, false});
  }
  cases.push_back({"bf16_t1_d37_in_place", 22, DType::kBF16, 1, 37, 37, 1e-6f, true});
  cases.push_back({"f32_t9_d64_strided", 23, DType::kF32, 9, 64, 80, 1e-5f, false});
  cases.push_back({"f32_t3_d48_tiny_x", 24, DType::kF32, 3, 48, 48, 1e-2f, false});  // eps dominates
  return cases;
}

using RmsNormTest = OpTest<RmsNormCase>;

TEST_P(RmsNormTest, MatchesReference) {
  SCOPED_TRACE(Trace());
  std::mt19937_64 rng(c().seed);
  const float scale = c().eps >= 1e-2f ? 0.05f : 3.0f;
  const std::vector<float> x = RandomFloats(static_cast<size_t>(c().rows * c().x_stride), rng, scale);
  const HostMatrix w = RandomMatrix(c().w_dtype, 1, c().dim, rng, 1.5f);
  const Tensor xt = PutF32(x, c().rows, c().dim, c().x_stride);
  const Tensor out = c().in_place ? xt
                                  : PutF32(std::vector<float>(static_cast<size_t>(c().rows * c().dim), -7.0f), c().rows,
                                           c().dim, c().dim);
  backend_->RmsNorm(xt, Weight(w, /*vector=*/true), c().eps, out);
  const std::vector<float> all = Get<float>(out.data, static_cast<size_t>(c().rows * out.stride));
  std::vector<float> got;
  std::vector<double> ref;
  for (int64_t r = 0; r < c().rows; ++r) {
    double ss = 0.0;
    for (int64_t i = 0; i < c().dim; ++i) ss += static_cast<double>(x[r * c().x_stride + i]) * x[r * c().x_stride + i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(c().dim) + c().eps);
    for (int64_t i = 0; i < c().dim; ++i) {
      ref.push_back(x[r * c().x_stride + i] * inv * w.at(0, i));
      got.push_back(all[static_cast<size_t>(r * out.stride + i)]);
    }
  }
  ExpectClose(got, ref, 1e-6, 1e-5, "rmsnorm");
}

ADAK_INSTANTIATE(RmsNorm, RmsNormTest, RmsNormCase, RmsNormCases());

// ---- Linear: out (=|+=) x w^T + bias; tolerance 1e-6 + 1e-5 * sum_k |x_k w_k| ----

struct LinearCase {
  std::string name;
  uint64_t seed = 1;
  DType w_dtype = DType::kF32;
  int64_t rows = 3, k = 64, n = 32;
  bool bias = false;
  DType bias_dtype = DType::kF32;
  bool accumulate = false;
  int64_t pad = 0;  // extra columns of x's and out's row strides
};
ADAK_PRINT_CASE(LinearCase)

std::vector<LinearCase> LinearCases() {
  std::vector<LinearCase> cases;
  uint64_t seed = 31;
  for (DType d : {DType::kF32, DType::kBF16, DType::kF16}) {
    const std::string t = DTypeTag(d);
    cases.push_back({t + "_t1_k64_n32", seed++, d, 1, 64, 32, false, DType::kF32, false, 0});
    cases.push_back({t + "_t7_k37_n19_bias", seed++, d, 7, 37, 19, true, DType::kF32, false, 0});
    cases.push_back({t + "_t5_k96_n40_accumulate", seed++, d, 5, 96, 40, false, DType::kF32, true, 0});
    cases.push_back({t + "_t33_k128_n65_bias_accumulate_strided", seed++, d, 33, 128, 65, true, DType::kF32, true, 9});
  }
  cases.push_back({"bf16_t4_k64_n24_bf16_bias", seed++, DType::kBF16, 4, 64, 24, true, DType::kBF16, false, 0});
  return cases;
}

using LinearTest = OpTest<LinearCase>;

TEST_P(LinearTest, MatchesReference) {
  SCOPED_TRACE(Trace());
  std::mt19937_64 rng(c().seed);
  const int64_t xs = c().k + c().pad, os = c().n + c().pad;
  const std::vector<float> x = RandomFloats(static_cast<size_t>(c().rows * xs), rng);
  const HostMatrix w = RandomMatrix(c().w_dtype, c().n, c().k, rng, 0.5f);
  const HostMatrix bias = RandomMatrix(c().bias_dtype, 1, c().n, rng, 1.0f);
  const std::vector<float> out0 = RandomFloats(static_cast<size_t>(c().rows * os), rng);
  const Tensor out = PutF32(out0, c().rows, c().n, os);
  backend_->Linear(PutF32(x, c().rows, c().k, xs), Weight(w), c().bias ? Weight(bias, true) : Tensor{}, out,
                   c().accumulate);
  const std::vector<float> all = Get<float>(out.data, out0.size());
  std::vector<float> got;
  std::vector<double> ref, bound;
  for (int64_t t = 0; t < c().rows; ++t) {
    for (int64_t j = 0; j < c().n; ++j) {
      double acc = c().accumulate ? out0[static_cast<size_t>(t * os + j)] : 0.0;
      double mag = std::abs(acc);
      if (c().bias) {
        acc += bias.at(0, j);
        mag += std::abs(bias.at(0, j));
      }
      for (int64_t i = 0; i < c().k; ++i) {
        acc += x[static_cast<size_t>(t * xs + i)] * w.at(j, i);
        mag += std::abs(x[static_cast<size_t>(t * xs + i)] * w.at(j, i));
      }
      ref.push_back(acc);
      bound.push_back(1e-6 + 1e-5 * mag);
      got.push_back(all[static_cast<size_t>(t * os + j)]);
    }
  }
  ExpectClose(got, ref, 0, 0, "linear", bound);
  // The stride padding of out is not written.
  for (int64_t t = 0; t < c().rows; ++t) {
    for (int64_t j = c().n; j < os; ++j) ASSERT_EQ(all[t * os + j], out0[t * os + j]) << "padding " << t << "," << j;
  }
}

ADAK_INSTANTIATE(Linear, LinearTest, LinearCase, LinearCases());

// ---- Rope: rotate-half rotary embedding in place; tolerance 2e-4 (fp32 angles up to position ~300) ----

struct RopeCase {
  std::string name;
  uint64_t seed = 1;
  int64_t rows = 4, heads = 4, head_dim = 16, pad = 0;
  double theta = 10000.0;
  int32_t max_position = 300;
};
ADAK_PRINT_CASE(RopeCase)

std::vector<RopeCase> RopeCases() {
  return {{"t1_h1_d8", 41, 1, 1, 8, 0, 10000.0, 5},
          {"t6_h4_d16", 42, 6, 4, 16, 0, 10000.0, 300},
          {"t5_h8_d64_theta5e5_strided", 43, 5, 8, 64, 128, 500000.0, 300},
          {"t3_h2_d128", 44, 3, 2, 128, 0, 1000000.0, 200}};
}

using RopeTest = OpTest<RopeCase>;

TEST_P(RopeTest, MatchesReference) {
  SCOPED_TRACE(Trace());
  std::mt19937_64 rng(c().seed);
  const int64_t cols = c().heads * c().head_dim, stride = cols + c().pad;
  const std::vector<float> x = RandomFloats(static_cast<size_t>(c().rows * stride), rng);
  std::vector<int32_t> pos(static_cast<size_t>(c().rows));
  std::uniform_int_distribution<int32_t> pick(0, c().max_position);
  for (int32_t& p : pos) p = pick(rng);
  pos[0] = 0;
  const Tensor xt = PutF32(x, c().rows, cols, stride);
  backend_->Rope(xt, c().heads, c().head_dim, Put(pos), c().theta);
  const std::vector<float> all = Get<float>(xt.data, x.size());
  std::vector<float> got;
  std::vector<double> ref;
  const int64_t half = c().head_dim / 2;
  for (int64_t t = 0; t < c().rows; ++t) {
    for (int64_t h = 0; h < c().heads; ++h) {
      const int64_t base = t * stride + h * c().head_dim;
      for (int64_t i = 0; i < c().head_dim; ++i) {
        const int64_t j = i % half;
        const double angle = pos[t] / std::pow(c().theta, static_cast<double>(2 * j) / c().head_dim);
        const double x1 = x[base + j], x2 = x[base + j + half];
        ref.push_back(i < half ? x1 * std::cos(angle) - x2 * std::sin(angle)
                               : x2 * std::cos(angle) + x1 * std::sin(angle));
        got.push_back(all[base + i]);
      }
    }
    for (int64_t i = cols; i < stride; ++i) ASSERT_EQ(all[t * stride + i], x[t * stride + i]) << "padding";
  }
  ExpectClose(got, ref, 2e-4, 0.0, "rope");
}

ADAK_INSTANTIATE(Rope, RopeTest, RopeCase, RopeCases());

// ---- Attention: writes K/V into the paged cache (fp32, or rounded to bf16), causal attention per sequence;
// tolerance 2e-5 + 2e-5 |ref| against the reference over the values the cache holds ----

// One sequence of the batch: `context` tokens already in the cache, then `chunk` new tokens in this call.
struct SeqSpec {
  int32_t context = 0;
  int32_t chunk = 1;
};

struct AttentionCase {
  std::string name;
  uint64_t seed = 1;
  std::vector<SeqSpec> seqs;
  int64_t heads = 4, kv_heads = 2, head_dim = 16, block_size = 4, num_blocks = 32;
  bool fused_qkv = false;  // q, k, v as column views of one [T, (heads + 2 kv_heads) * head_dim] buffer
  DType cache_dtype = DType::kF32;
};
ADAK_PRINT_CASE(AttentionCase)

std::vector<AttentionCase> AttentionCases() {
  return {
      {"decode_t1_pos0", 51, {{0, 1}}, 2, 2, 8, 4, 4, false, DType::kF32},
      {"decode_3seqs_gqa", 52, {{5, 1}, {17, 1}, {0, 1}}, 4, 2, 16, 4, 32, false, DType::kF32},
      {"prefill_first_chunk_mha", 53, {{0, 7}}, 3, 3, 16, 4, 8, false, DType::kF32},
      {"prefill_chunk_after_context_mqa", 54, {{8, 6}, {3, 1}}, 4, 1, 8, 4, 16, false, DType::kF32},
      {"mixed_prefill_decode_gqa_d64_fused_qkv",
       55,
       {{2, 1}, {11, 9}, {30, 1}, {0, 3}},
       8,
       2,
       64,
       16,
       12,
       true,
       DType::kF32},
      {"bf16_decode_3seqs_gqa", 56, {{5, 1}, {17, 1}, {0, 1}}, 4, 2, 16, 4, 32, false, DType::kBF16},
      {"bf16_mixed_prefill_decode_d64_fused_qkv",
       57,
       {{2, 1}, {11, 9}, {30, 1}, {0, 3}},
       8,
       2,
       64,
       16,
       12,
       true,
       DType::kBF16},
  };
}

using AttentionTest = OpTest<AttentionCase>;

TEST_P(AttentionTest, MatchesReference) {
  SCOPED_TRACE(Trace());
  const AttentionCase& a = c();
  std::mt19937_64 rng(a.seed);
  const int64_t hd = a.head_dim, qd = a.heads * hd, kvd = a.kv_heads * hd;
  const auto num_seqs = static_cast<int64_t>(a.seqs.size());

  // Block tables: each sequence gets distinct physical blocks, shuffled.
  int64_t max_blocks = 0;
  for (const SeqSpec& s : a.seqs)
    max_blocks = std::max<int64_t>(max_blocks, (s.context + s.chunk + a.block_size - 1) / a.block_size);
  std::vector<int32_t> physical(static_cast<size_t>(a.num_blocks));
  std::iota(physical.begin(), physical.end(), 0);
  std::shuffle(physical.begin(), physical.end(), rng);
  std::vector<int32_t> tables(static_cast<size_t>(num_seqs * max_blocks), -1);
  size_t next = 0;
  for (int64_t s = 0; s < num_seqs; ++s) {
    const int64_t n = (a.seqs[s].context + a.seqs[s].chunk + a.block_size - 1) / a.block_size;
    for (int64_t j = 0; j < n; ++j) tables[static_cast<size_t>(s * max_blocks + j)] = physical.at(next++);
  }
  auto slot_of = [&](int64_t s, int64_t p) {
    return tables[static_cast<size_t>(s * max_blocks + p / a.block_size)] * a.block_size + p % a.block_size;
  };

  // The cache starts as random junk; the context positions read it. A bf16 cache holds bf16 values: the
  // junk is drawn as such, and the batch's K/V rows are stored rounded (`stored`).
  const bool bf16 = a.cache_dtype == DType::kBF16;
  auto stored = [bf16](float x) { return bf16 ? Bf16ToF32(F32ToBf16(x)) : x; };
  const auto cache_elems = static_cast<size_t>(a.num_blocks * a.block_size * kvd);
  std::vector<float> k_cache0 = RandomFloats(cache_elems, rng), v_cache0 = RandomFloats(cache_elems, rng);
  for (float& x : k_cache0) x = stored(x);
  for (float& x : v_cache0) x = stored(x);
  auto to_bf16 = [](const std::vector<float>& f) {
    std::vector<uint16_t> b(f.size());
    for (size_t i = 0; i < f.size(); ++i) b[i] = F32ToBf16(f[i]);
    return b;
  };

  // The batch.
  std::vector<int32_t> positions, token_seq, slots;
  for (int64_t s = 0; s < num_seqs; ++s) {
    for (int32_t i = 0; i < a.seqs[s].chunk; ++i) {
      positions.push_back(a.seqs[s].context + i);
      token_seq.push_back(static_cast<int32_t>(s));
      slots.push_back(static_cast<int32_t>(slot_of(s, a.seqs[s].context + i)));
    }
  }
  const auto t_count = static_cast<int64_t>(positions.size());
  const int64_t qkv_stride = a.fused_qkv ? qd + 2 * kvd : 0;
  std::vector<float> q, k, v, qkv;
  AttentionArgs args;
  if (a.fused_qkv) {
    qkv = RandomFloats(static_cast<size_t>(t_count * qkv_stride), rng);
    auto* d = Put(qkv);
    args.q = Tensor{d, DType::kF32, t_count, qd, qkv_stride};
    args.k = Tensor{d + qd, DType::kF32, t_count, kvd, qkv_stride};
    args.v = Tensor{d + qd + kvd, DType::kF32, t_count, kvd, qkv_stride};
    for (int64_t t = 0; t < t_count; ++t) {
      const float* row = qkv.data() + t * qkv_stride;
      q.insert(q.end(), row, row + qd);
      k.insert(k.end(), row + qd, row + qd + kvd);
      v.insert(v.end(), row + qd + kvd, row + qd + 2 * kvd);
    }
  } else {
    q = RandomFloats(static_cast<size_t>(t_count * qd), rng);
    k = RandomFloats(static_cast<size_t>(t_count * kvd), rng);
    v = RandomFloats(static_cast<size_t>(t_count * kvd), rng);
    args.q = PutF32(q, t_count, qd, qd);
    args.k = PutF32(k, t_count, kvd, kvd);
    args.v = PutF32(v, t_count, kvd, kvd);
  }
  args.heads = a.heads;
  args.kv_heads = a.kv_heads;
  args.head_dim = hd;
  args.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  if (bf16) {
    args.k_cache = Put(to_bf16(k_cache0));
    args.v_cache = Put(to_bf16(v_cache0));
  } else {
    args.k_cache = Put(k_cache0);
    args.v_cache = Put(v_cache0);
  }
  args.cache_dtype = a.cache_dtype;
  args.num_blocks = a.num_blocks;
  args.block_size = a.block_size;
  args.batch.num_tokens = t_count;
  args.batch.positions = Put(positions);
  args.batch.token_seq = Put(token_seq);
  args.batch.slots = Put(slots);
  args.batch.block_tables = Put(tables);
  args.batch.max_blocks_per_seq = max_blocks;
  args.out = PutF32(std::vector<float>(static_cast<size_t>(t_count * qd), -7.0f), t_count, qd, qd);
  backend_->Attention(args);

  // The cache: the batch's slots hold its K/V rows (exactly, or rounded to nearest even bf16), every other
  // slot is unchanged. From here on k and v are what the cache holds.
  for (float& x : k) x = stored(x);
  for (float& x : v) x = stored(x);
  std::vector<float> k_want = k_cache0, v_want = v_cache0;
  for (int64_t t = 0; t < t_count; ++t) {
    std::copy_n(k.begin() + t * kvd, kvd, k_want.begin() + slots[t] * kvd);
    std::copy_n(v.begin() + t * kvd, kvd, v_want.begin() + slots[t] * kvd);
  }
  if (bf16) {
    ExpectEqualSeq<uint16_t>(Get<uint16_t>(args.k_cache, cache_elems), to_bf16(k_want), "k_cache");
    ExpectEqualSeq<uint16_t>(Get<uint16_t>(args.v_cache, cache_elems), to_bf16(v_want), "v_cache");
  } else {
    ExpectEqualSeq<float>(Get<float>(args.k_cache, cache_elems), k_want, "k_cache");
    ExpectEqualSeq<float>(Get<float>(args.v_cache, cache_elems), v_want, "v_cache");
  }

  // Reference over each sequence's logical K/V: context positions from the initial cache, then the chunk.
  std::vector<double> ref;
  for (int64_t t = 0; t < t_count; ++t) {
    const int64_t s = token_seq[t];
    const int64_t p = positions[t];
    const int64_t chunk_start = a.seqs[s].context;
    const int64_t first_token = t - (p - chunk_start);  // the batch row of the chunk's first token
    auto key = [&](int64_t j, int64_t g, int64_t i) -> double {
      if (j < chunk_start) return k_cache0[static_cast<size_t>(slot_of(s, j) * kvd + g * hd + i)];
      return k[static_cast<size_t>((first_token + j - chunk_start) * kvd + g * hd + i)];
    };
    auto value = [&](int64_t j, int64_t g, int64_t i) -> double {
      if (j < chunk_start) return v_cache0[static_cast<size_t>(slot_of(s, j) * kvd + g * hd + i)];
      return v[static_cast<size_t>((first_token + j - chunk_start) * kvd + g * hd + i)];
    };
    for (int64_t h = 0; h < a.heads; ++h) {
      const int64_t g = h / (a.heads / a.kv_heads);
      std::vector<double> score(static_cast<size_t>(p + 1));
      double mx = -1e300;
      for (int64_t j = 0; j <= p; ++j) {
        double dot = 0.0;
        for (int64_t i = 0; i < hd; ++i) dot += q[static_cast<size_t>(t * qd + h * hd + i)] * key(j, g, i);
        score[static_cast<size_t>(j)] = dot * args.scale;
        mx = std::max(mx, score[static_cast<size_t>(j)]);
      }
      double sum = 0.0;
      for (double& sc : score) sum += sc = std::exp(sc - mx);
      for (int64_t i = 0; i < hd; ++i) {
        double o = 0.0;
        for (int64_t j = 0; j <= p; ++j) o += score[static_cast<size_t>(j)] * value(j, g, i);
        ref.push_back(o / sum);
      }
    }
  }
  ExpectClose(Get<float>(args.out.data, static_cast<size_t>(t_count * qd)), ref, 2e-5, 2e-5, "attention out");
}

ADAK_INSTANTIATE(Attention, AttentionTest, AttentionCase, AttentionCases());

// ---- Mlp and Moe share the SwiGLU expert reference ----

// down(silu(gate x) * up x) in double over exact weight values.
std::vector<double> SwiGluRef(const HostMatrix& gate, const HostMatrix& up, const HostMatrix& down, const float* x) {
  const int64_t inter = gate.rows, hidden = gate.cols;
  std::vector<double> h(static_cast<size_t>(inter)), y(static_cast<size_t>(hidden), 0.0);
  for (int64_t i = 0; i < inter; ++i) {
    double g = 0.0, u = 0.0;
    for (int64_t j = 0; j < hidden; ++j) {
      g += gate.at(i, j) * x[j];
      u += up.at(i, j) * x[j];
    }
    h[static_cast<size_t>(i)] = Silu(g) * u;
  }
  for (int64_t n = 0; n < hidden; ++n) {
    for (int64_t i = 0; i < inter; ++i) y[static_cast<size_t>(n)] += down.at(n, i) * h[static_cast<size_t>(i)];
  }
  return y;
}

struct HostMlp {
  HostMatrix gate, up, down;
};

HostMlp RandomMlp(DType dtype, int64_t hidden, int64_t inter, std::mt19937_64& rng) {
  return {RandomMatrix(dtype, inter, hidden, rng, 0.25f), RandomMatrix(dtype, inter, hidden, rng, 0.25f),
          RandomMatrix(dtype, hidden, inter, rng, 0.25f)};
}

// ---- Mlp: out += down(silu(gate x) * up x); tolerance 1e-4 + 1e-4 |ref| ----

struct MlpCase {
  std::string name;
  uint64_t seed = 1;
  DType dtype = DType::kBF16;
  int64_t rows = 3, hidden = 64, inter = 32;
};
ADAK_PRINT_CASE(MlpCase)

std::vector<MlpCase> MlpCases() {
  std::vector<MlpCase> cases;
  uint64_t seed = 61;
  for (DType d : {DType::kBF16, DType::kF16, DType::kF32}) {
    const std::string t = DTypeTag(d);
    cases.push_back({t + "_t1_h64_i32", seed++, d, 1, 64, 32});
    cases.push_back({t + "_t5_h40_i24", seed++, d, 5, 40, 24});
    cases.push_back({t + "_t33_h96_i48", seed++, d, 33, 96, 48});
  }
  return cases;
}

using MlpTest = OpTest<MlpCase>;

TEST_P(MlpTest, MatchesReference) {
  SCOPED_TRACE(Trace());
  std::mt19937_64 rng(c().seed);
  const HostMlp w = RandomMlp(c().dtype, c().hidden, c().inter, rng);
  const std::vector<float> x = RandomFloats(static_cast<size_t>(c().rows * c().hidden), rng);
  const std::vector<float> out0 = RandomFloats(x.size(), rng);
  const Tensor out = PutF32(out0, c().rows, c().hidden, c().hidden);
  backend_->Mlp(PutF32(x, c().rows, c().hidden, c().hidden), MlpTensors{Weight(w.gate), Weight(w.up), Weight(w.down)},
                out);
  std::vector<double> ref;
  for (int64_t r = 0; r < c().rows; ++r) {
    const std::vector<double> y = SwiGluRef(w.gate, w.up, w.down, x.data() + r * c().hidden);
    for (int64_t i = 0; i < c().hidden; ++i) ref.push_back(out0[r * c().hidden + i] + y[static_cast<size_t>(i)]);
  }
  ExpectClose(Get<float>(out.data, x.size()), ref, 1e-4, 1e-4, "mlp out");
}

ADAK_INSTANTIATE(Mlp, MlpTest, MlpCase, MlpCases());

// ---- Moe: routing by each token's policy, routed experts, shared expert ----

// kTopP: raw top-p over all E; kTopPModel: top-p over the share of the token's K candidates; kThreshold: SER.
enum class Policy { kTopK, kAdaK, kAdaKSample, kNull, kTopP, kTopPModel, kThreshold, kMixed };

struct MoeCase {
  std::string name;
  uint64_t seed = 1;
  int64_t tokens = 5;
  int64_t experts = 8;     // E
  bool allocator = false;  // Ea = E
  int64_t null_rows = 0;   // M
  bool renormalize = false;
  Policy policy = Policy::kTopK;
  int32_t k = 2;                   // kTopK's k / kNull's k' / kAdaK's fallback; -1: random per token in [0, E]
  DType dtype = DType::kBF16;      // experts
  DType gate_dtype = DType::kF32;  // fused gate rows
  bool shared = false;
  bool shared_gate = false;
  bool record = true;  // ids_out / weights_out
  int64_t hidden = 64, inter = 32;
  bool ties = false;  // router rows drawn from a few values: many exactly tied logits
};
ADAK_PRINT_CASE(MoeCase)

std::vector<MoeCase> MoeCases() {
  std::vector<MoeCase> c;
  uint64_t seed = 71;
  auto add = [&](MoeCase m) {
    m.seed = seed++;
    c.push_back(std::move(m));
  };
  add({.name = "topk_e8_t5_k2_renorm", .experts = 8, .renormalize = true});
  add({.name = "topk_e8_t5_k2_raw", .experts = 8});
  add({.name = "topk_e60_t1_k4_unchosen_experts", .tokens = 1, .experts = 60, .k = 4});
  add({.name = "topk_e64_t6_k_equals_e", .tokens = 6, .experts = 64, .renormalize = true, .k = 64});
  add({.name = "topk_e60_t9_random_k_with_zero", .tokens = 9, .experts = 60, .k = -1});
  add({.name = "topk_e60_t7_tied_logits", .tokens = 7, .experts = 60, .renormalize = true, .k = 6, .ties = true});
  add({.name = "adak_e60_t9",
       .tokens = 9,
       .experts = 60,
       .allocator = true,
       .renormalize = true,
       .policy = Policy::kAdaK});
  add({.name = "adak_e64_t8_tied",
       .tokens = 8,
       .experts = 64,
       .allocator = true,
       .policy = Policy::kAdaK,
       .ties = true});
  add({.name = "adak_sample_e64_t9",
       .tokens = 9,
       .experts = 64,
       .allocator = true,
       .renormalize = true,
       .policy = Policy::kAdaKSample});
  add({.name = "adak_without_allocator_e8", .experts = 8, .policy = Policy::kAdaK, .k = 3});
  add({.name = "null_e8_m4_t9_k2", .tokens = 9, .experts = 8, .null_rows = 4, .policy = Policy::kNull});
  add({.name = "null_e60_m4_t9_k4_renorm_flag",
       .tokens = 9,
       .experts = 60,
       .null_rows = 4,
       .renormalize = true,
       .policy = Policy::kNull,
       .k = 4});
  add({.name = "null_without_null_rows_e8", .experts = 8, .policy = Policy::kNull, .k = 3});
  add({.name = "topp_e60_t9", .tokens = 9, .experts = 60, .policy = Policy::kTopP});
  add({.name = "topp_e64_t5_renorm_flag_ignored", .experts = 64, .renormalize = true, .policy = Policy::kTopP});
  add({.name = "topp_model_e60_t9_k6_renorm",
       .tokens = 9,
       .experts = 60,
       .renormalize = true,
       .policy = Policy::kTopPModel,
       .k = 6});
  add({.name = "topp_model_e64_t7_k8_raw", .tokens = 7, .experts = 64, .policy = Policy::kTopPModel, .k = 8});
  add({.name = "threshold_e64_t9_k8_renorm",
       .tokens = 9,
       .experts = 64,
       .renormalize = true,
       .policy = Policy::kThreshold,
       .k = 8});
  add({.name = "threshold_e60_t7_k6_raw_tied",
       .tokens = 7,
       .experts = 60,
       .policy = Policy::kThreshold,
       .k = 6,
       .ties = true});
  add({.name = "mixed_e60_t17",
       .tokens = 17,
       .experts = 60,
       .allocator = true,
       .null_rows = 4,
       .renormalize = true,
       .policy = Policy::kMixed});
  add({.name = "mixed_e64_t33_tied",
       .tokens = 33,
       .experts = 64,
       .allocator = true,
       .null_rows = 2,
       .policy = Policy::kMixed,
       .ties = true});
  add({.name = "topk_f16_experts_shared_gated",
       .experts = 8,
       .renormalize = true,
       .dtype = DType::kF16,
       .shared = true,
       .shared_gate = true});
  add({.name = "topk_f32_experts_shared_ungated", .experts = 8, .dtype = DType::kF32, .shared = true});
  add({.name = "mixed_e8_bf16_gate_shared_gated_no_record",
       .tokens = 7,
       .experts = 8,
       .allocator = true,
       .null_rows = 2,
       .policy = Policy::kMixed,
       .gate_dtype = DType::kBF16,
       .shared = true,
       .shared_gate = true,
       .record = false});
  add({.name = "topk_e60_h40_i24_tails", .tokens = 5, .experts = 60, .k = 8, .hidden = 40, .inter = 24});
  return c;
}

// The routing of one token, as kernels/cpu/moe_routing.h states the rules, in double.
struct RefRoute {
  int32_t k = 0;
  std::vector<int32_t> ids;  // [E], -1 past k
  std::vector<double> w;     // [E], 0 past k
};

std::vector<double> SoftmaxRef(const std::vector<double>& x) {
  const double mx = *std::max_element(x.begin(), x.end());
  std::vector<double> p(x.size());
  double sum = 0.0;
  for (size_t i = 0; i < x.size(); ++i) sum += p[i] = std::exp(x[i] - mx);
  for (double& v : p) v /= sum;
  return p;
}

// Indices by descending probability, ties to the lower index.
std::vector<int32_t> OrderRef(const std::vector<double>& p) {
  std::vector<int32_t> o(p.size());
  std::iota(o.begin(), o.end(), 0);
  std::stable_sort(o.begin(), o.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  return o;
}

RefRoute RouteRef(const std::vector<double>& logits, int64_t e, int64_t ea, int64_t m, bool renormalize, int64_t layer,
                  const TokenRoute& r) {
  RefRoute out;
  out.ids.assign(static_cast<size_t>(e), -1);
  out.w.assign(static_cast<size_t>(e), 0.0);
  if (r.policy == RoutePolicy::kNull && m > 0) {
    std::vector<double> joined(logits.begin(), logits.begin() + e);
    joined.insert(joined.end(), logits.begin() + e + ea, logits.begin() + e + ea + m);
    const std::vector<double> p = SoftmaxRef(joined);
    const std::vector<int32_t> order = OrderRef(p);
    const int64_t kk = std::clamp<int64_t>(r.k, 0, e + m);
    double sum = 0.0;
    for (int64_t j = 0; j < kk; ++j) {
      if (order[j] >= e) continue;
      out.ids[out.k] = order[j];
      out.w[out.k] = p[order[j]];
      sum += p[order[j]];
      ++out.k;
    }
    for (int32_t j = 0; j < out.k; ++j) out.w[j] /= sum;
    return out;
  }
  const std::vector<double> p = SoftmaxRef(std::vector<double>(logits.begin(), logits.begin() + e));
  const std::vector<int32_t> order = OrderRef(p);
  int64_t k = r.k;
  bool renorm = renormalize;
  if (r.policy == RoutePolicy::kAdaK && ea > 0) {
    const std::vector<double> alloc(logits.begin() + e, logits.begin() + e + ea);
    int64_t a = 0;
    if (r.sample != 0) {
      const double mx = *std::max_element(alloc.begin(), alloc.end());
      double sum = 0.0;
      for (double v : alloc) sum += std::exp(v - mx);
      const double target = kernels::RouteUniform(r.seed, layer) * sum;
      double acc = 0.0;
      a = ea - 1;
      for (int64_t i = 0; i < ea; ++i) {
        acc += std::exp(alloc[i] - mx);
        if (target < acc) {
          a = i;
          break;
        }
      }
    } else {
      a = std::max_element(alloc.begin(), alloc.end()) - alloc.begin();  // first maximum
    }
    k = std::clamp<int64_t>(a + 1, r.min_k, r.max_k);
  } else if (r.policy == RoutePolicy::kTopP) {
    // Raw: any number of the E experts, raw weights. Model weighting: a prefix of the K candidates holding
    // >= top_p of their mass, weighted as top-K.
    const int64_t candidates = r.topp_raw != 0 ? e : std::clamp<int64_t>(r.k, 0, e);
    if (r.topp_raw != 0) renorm = false;
    double total = 0.0;
    for (int64_t j = 0; j < candidates; ++j) total += p[order[j]];
    k = candidates;
    double mass = 0.0;
    for (int64_t j = 0; j < candidates; ++j) {
      mass += p[order[j]];
      if (mass >= r.top_p * total) {
        k = j + 1;
        break;
      }
    }
  } else if (r.policy == RoutePolicy::kThreshold) {
    const int64_t candidates = std::clamp<int64_t>(r.k, 0, e);
    k = std::min<int64_t>(candidates, 1);
    while (k < candidates && p[order[k]] >= r.threshold * p[order[0]]) ++k;
    k = std::max<int64_t>(k, std::min<int64_t>(r.min_k, candidates));
  }
  k = std::clamp<int64_t>(k, 0, e);
  double sum = 0.0;
  for (int64_t j = 0; j < k; ++j) sum += p[order[j]];
  for (int64_t j = 0; j < k; ++j) {
    out.ids[j] = order[j];
    out.w[j] = p[order[j]] / (renorm && sum > 0.0 ? sum : 1.0);
  }
  out.k = static_cast<int32_t>(k);
  return out;
}

// A top-p threshold halfway between the cumulative masses of the k-th and (k+1)-th experts, for a random k whose
// expert has probability >= 1e-3 (so fp32 and double agree on k).
float TopPFor(const std::vector<double>& router_logits, std::mt19937_64& rng) {
  const std::vector<double> p = SoftmaxRef(router_logits);
  const std::vector<int32_t> order = OrderRef(p);
  std::vector<double> cum;
  cum.reserve(order.size());
  double mass = 0.0;
  for (int32_t id : order) cum.push_back(mass += p[id]);
  std::vector<size_t> ok;  // k - 1 where the k-th expert's probability is large enough
  for (size_t j = 0; j + 1 < cum.size(); ++j) {
    if (p[order[j]] >= 1e-3 && p[order[j + 1]] >= 1e-3) ok.push_back(j);
  }
  if (ok.empty()) return static_cast<float>(cum[0] / 2);
  const size_t j = ok[std::uniform_int_distribution<size_t>(0, ok.size() - 1)(rng)];
  return static_cast<float>((cum[j] + cum[j + 1]) / 2);
}

// A value halfway between two consecutive distinct entries of `points` (ascending), at a random place, so
// fp32 and double agree on which side every entry falls; `fallback` when there is no such pair.
float HalfwayBetween(const std::vector<double>& points, double fallback, std::mt19937_64& rng) {
  std::vector<size_t> ok;
  for (size_t j = 0; j + 1 < points.size(); ++j) {
    if (points[j + 1] - points[j] > 1e-4) ok.push_back(j);
  }
  if (ok.empty()) return static_cast<float>(fallback);
  const size_t j = ok[std::uniform_int_distribution<size_t>(0, ok.size() - 1)(rng)];
  return static_cast<float>((points[j] + points[j + 1]) / 2);
}

// Model-weighted top-p: halfway between the cumulative shares of the first `candidates` experts.
float TopPModelFor(const std::vector<double>& router_logits, int64_t candidates, std::mt19937_64& rng) {
  const std::vector<double> p = SoftmaxRef(router_logits);
  const std::vector<int32_t> order = OrderRef(p);
  const auto n = static_cast<size_t>(std::clamp<int64_t>(candidates, 0, static_cast<int64_t>(p.size())));
  double total = 0.0;
  for (size_t j = 0; j < n; ++j) total += p[order[j]];
  std::vector<double> shares;
  double mass = 0.0;
  for (size_t j = 0; j < n; ++j) shares.push_back((mass += p[order[j]]) / total);
  return HalfwayBetween(shares, 0.5, rng);
}

// Threshold: halfway between the ratios p_j / p_1 of the first `candidates` experts (ascending).
float ThresholdFor(const std::vector<double>& router_logits, int64_t candidates, std::mt19937_64& rng) {
  const std::vector<double> p = SoftmaxRef(router_logits);
  const std::vector<int32_t> order = OrderRef(p);
  const auto n = static_cast<size_t>(std::clamp<int64_t>(candidates, 0, static_cast<int64_t>(p.size())));
  std::vector<double> ratios;
  for (size_t j = 0; j < n; ++j) ratios.push_back(p[order[j]] / p[order[0]]);
  std::sort(ratios.begin(), ratios.end());
  return HalfwayBetween(ratios, 0.5, rng);
}

using MoeTest = OpTest<MoeCase>;

TEST_P(MoeTest, MatchesReference) {
  SCOPED_TRACE(Trace());
  const MoeCase& mc = c();
  std::mt19937_64 rng(mc.seed);
  const int64_t t_count = mc.tokens, e = mc.experts, h = mc.hidden, ea = mc.allocator ? e : 0, m = mc.null_rows;
  const int64_t g_rows = e + ea + m;
  const int64_t layer = std::uniform_int_distribution<int64_t>(0, 15)(rng);

  // x: multiples of 1/2 in [-1, 1]; with null rows, the last 16 columns are a per-token +-1 switch that only the
  // null rows read (null row j weighs 16 - 3j of them), so some tokens pick null experts only.
  const int64_t switch_cols = m > 0 ? 16 : 0;
  std::vector<float> x(static_cast<size_t>(t_count * h));
  std::uniform_int_distribution<int> half_steps(-2, 2), coin(0, 1);
  for (int64_t t = 0; t < t_count; ++t) {
    const float sw = coin(rng) != 0 ? 1.0f : -1.0f;
    for (int64_t i = 0; i < h; ++i)
      x[t * h + i] = i >= h - switch_cols ? sw : 0.5f * static_cast<float>(half_steps(rng));
  }
  // The fused gate: router and allocator rows multiples of 1/32 in [-1, 1] (ties: multiples of 1/2), null rows
  // read the switch only.
  HostMatrix gate = RandomMatrix(mc.gate_dtype, g_rows, h, rng, 1.0f, mc.ties ? 2 : 32);
  for (int64_t r = 0; r < g_rows; ++r) {
    for (int64_t i = h - switch_cols; i < h; ++i) {
      const bool reads = r >= e + ea && i - (h - switch_cols) < 16 - 3 * (r - e - ea);
      Store(gate, static_cast<size_t>(r * h + i), reads ? 1.0f : 0.0f);
    }
    if (r >= e + ea) {
      for (int64_t i = 0; i < h - switch_cols; ++i) Store(gate, static_cast<size_t>(r * h + i), 0.0f);
    }
  }
  // The logits, exact.
  std::vector<std::vector<double>> logits(static_cast<size_t>(t_count));
  for (int64_t t = 0; t < t_count; ++t) {
    for (int64_t r = 0; r < g_rows; ++r) {
      double s = 0.0;
      for (int64_t i = 0; i < h; ++i) s += gate.at(r, i) * x[t * h + i];
      logits[t].push_back(s);
    }
  }

  // Each token's route.
  std::vector<TokenRoute> routes(static_cast<size_t>(t_count));
  for (int64_t t = 0; t < t_count; ++t) {
    TokenRoute& r = routes[t];
    Policy p = mc.policy;
    if (p == Policy::kMixed) p = static_cast<Policy>(std::uniform_int_distribution<int>(0, 6)(rng));
    r.k = mc.k >= 0 ? mc.k : std::uniform_int_distribution<int32_t>(0, static_cast<int32_t>(e))(rng);
    if (mc.policy == Policy::kMixed) r.k = std::uniform_int_distribution<int32_t>(0, 4)(rng);
    switch (p) {
      case Policy::kTopK: r.policy = RoutePolicy::kTopK; break;
      case Policy::kAdaK:
      case Policy::kAdaKSample:
        r.policy = RoutePolicy::kAdaK;
        r.min_k = std::uniform_int_distribution<int32_t>(1, 3)(rng);
        r.max_k = std::uniform_int_distribution<int32_t>(r.min_k, static_cast<int32_t>(e))(rng);
        r.sample = p == Policy::kAdaKSample ? 1 : 0;
        r.seed = rng();
        break;
      case Policy::kNull: r.policy = RoutePolicy::kNull; break;
      case Policy::kTopP:
        r.policy = RoutePolicy::kTopP;
        r.topp_raw = 1;
        r.top_p = TopPFor(std::vector<double>(logits[t].begin(), logits[t].begin() + e), rng);
        break;
      case Policy::kTopPModel:
        r.policy = RoutePolicy::kTopP;
        r.top_p = TopPModelFor(std::vector<double>(logits[t].begin(), logits[t].begin() + e), r.k, rng);
        break;
      case Policy::kThreshold:
        r.policy = RoutePolicy::kThreshold;
        r.min_k = std::uniform_int_distribution<int32_t>(1, 3)(rng);
        r.threshold = ThresholdFor(std::vector<double>(logits[t].begin(), logits[t].begin() + e), r.k, rng);
        break;
      case Policy::kMixed: break;
    }
  }
  std::vector<RefRoute> want;
  for (int64_t t = 0; t < t_count; ++t) want.push_back(RouteRef(logits[t], e, ea, m, mc.renormalize, layer, routes[t]));

  // Experts.
  std::vector<HostMlp> experts;
  std::vector<MlpTensors> expert_tensors;
  experts.reserve(static_cast<size_t>(e));
  for (int64_t i = 0; i < e; ++i) experts.push_back(RandomMlp(mc.dtype, h, mc.inter, rng));
  expert_tensors.reserve(experts.size());
  for (const HostMlp& w : experts) expert_tensors.push_back({Weight(w.gate), Weight(w.up), Weight(w.down)});
  const HostMlp shared = RandomMlp(mc.dtype, h, mc.inter + 8, rng);
  const HostMatrix shared_gate = RandomMatrix(mc.dtype, 1, h, rng, 0.25f);

  MoeArgs args;
  args.x = PutF32(x, t_count, h, h);
  args.gate = Weight(gate);
  args.num_experts = e;
  args.allocator_rows = ea;
  args.null_rows = m;
  args.renormalize = mc.renormalize;
  args.layer = layer;
  args.routes = Put(routes);
  args.experts = expert_tensors;
  if (mc.shared) args.shared = MlpTensors{Weight(shared.gate), Weight(shared.up), Weight(shared.down)};
  if (mc.shared_gate) args.shared_gate = Weight(shared_gate, true);
  const std::vector<float> out0 = RandomFloats(x.size(), rng);
  args.out = PutF32(out0, t_count, h, h);
  args.k_out = Put(std::vector<int32_t>(static_cast<size_t>(t_count), -7));
  if (mc.record) {
    args.ids_out = Put(std::vector<int32_t>(static_cast<size_t>(t_count * e), -7));
    args.weights_out = Put(std::vector<float>(static_cast<size_t>(t_count * e), -7.0f));
  }
  backend_->Moe(args);

  // Routing: k and ids exactly, weights within 1e-6 + 1e-5 |ref|.
  std::vector<int32_t> k_want, ids_want;
  std::vector<double> w_want;
  for (const RefRoute& r : want) {
    k_want.push_back(r.k);
    ids_want.insert(ids_want.end(), r.ids.begin(), r.ids.end());
    w_want.insert(w_want.end(), r.w.begin(), r.w.end());
  }
  ExpectEqualSeq<int32_t>(Get<int32_t>(args.k_out, static_cast<size_t>(t_count)), k_want, "k_out");
  if (mc.record) {
    ExpectEqualSeq<int32_t>(Get<int32_t>(args.ids_out, ids_want.size()), ids_want, "ids_out");
    ExpectClose(Get<float>(args.weights_out, w_want.size()), w_want, 1e-6, 1e-5, "weights_out");
  }
  if (m > 0 && mc.policy == Policy::kNull) {
    EXPECT_TRUE(std::any_of(k_want.begin(), k_want.end(), [](int32_t k) { return k == 0; }))
        << "the case should hold a token that picks null experts only";
  }

  // out += sum_j w_j expert_{id_j}(x) + sigmoid(shared_gate x) shared(x); tolerance 1e-4 + 1e-4 |ref|.
  std::vector<double> ref(out0.begin(), out0.end());
  for (int64_t t = 0; t < t_count; ++t) {
    const float* xt = x.data() + t * h;
    for (int32_t j = 0; j < want[t].k; ++j) {
      const HostMlp& w = experts[static_cast<size_t>(want[t].ids[j])];
      const std::vector<double> y = SwiGluRef(w.gate, w.up, w.down, xt);
      for (int64_t i = 0; i < h; ++i) ref[t * h + i] += want[t].w[j] * y[static_cast<size_t>(i)];
    }
    if (mc.shared) {
      double scale = 1.0;
      if (mc.shared_gate) {
        double s = 0.0;
        for (int64_t i = 0; i < h; ++i) s += shared_gate.at(0, i) * xt[i];
        scale = Sigmoid(s);
      }
      const std::vector<double> y = SwiGluRef(shared.gate, shared.up, shared.down, xt);
      for (int64_t i = 0; i < h; ++i) ref[t * h + i] += scale * y[static_cast<size_t>(i)];
    }
  }
  ExpectClose(Get<float>(args.out.data, x.size()), ref, 1e-4, 1e-4, "moe out");
}

ADAK_INSTANTIATE(Moe, MoeTest, MoeCase, MoeCases());

// ---- GatherRows: out[i] = x[rows[i]], exact, any 4-byte dtype ----

struct GatherCase {
  std::string name;
  uint64_t seed = 1;
  DType dtype = DType::kF32;
  int64_t rows = 10, cols = 24, x_stride = 24, out_stride = 24;
  std::vector<int32_t> picks;
};
ADAK_PRINT_CASE(GatherCase)

std::vector<GatherCase> GatherCases() {
  return {{"f32_one_row", 81, DType::kF32, 4, 16, 16, 16, {3}},
          {"f32_repeated_unordered_strided", 82, DType::kF32, 10, 24, 32, 28, {3, 3, 0, 9, 5}},
          {"i32_rows", 83, DType::kI32, 6, 5, 5, 5, {5, 0, 2}}};
}

using GatherRowsTest = OpTest<GatherCase>;

TEST_P(GatherRowsTest, MatchesReference) {
  SCOPED_TRACE(Trace());
  std::mt19937_64 rng(c().seed);
  std::vector<uint32_t> x(static_cast<size_t>(c().rows * c().x_stride));
  for (uint32_t& v : x) v = static_cast<uint32_t>(rng());  // any bit pattern (f32 NaNs included) moves as it is
  const auto n = static_cast<int64_t>(c().picks.size());
  std::vector<uint32_t> out0(static_cast<size_t>(n * c().out_stride), 0xdeadbeefu);
  auto* xd = Put(x);
  auto* od = Put(out0);
  backend_->GatherRows(Tensor{xd, c().dtype, c().rows, c().cols, c().x_stride}, Put(c().picks),
                       Tensor{od, c().dtype, n, c().cols, c().out_stride});
  std::vector<uint32_t> want = out0;
  for (int64_t i = 0; i < n; ++i) {
    std::copy_n(x.begin() + c().picks[i] * c().x_stride, c().cols, want.begin() + i * c().out_stride);
  }
  ExpectEqualSeq<uint32_t>(Get<uint32_t>(od, want.size()), want, "gathered");
}

ADAK_INSTANTIATE(GatherRows, GatherRowsTest, GatherCase, GatherCases());

// ---- Clamp: x = clamp(x, -limit, limit) in place, exact; stride padding untouched ----

struct ClampCase {
  std::string name;
  uint64_t seed = 1;
  int64_t rows = 5, cols = 17, stride = 17;
  float limit = 2.5f;
};
ADAK_PRINT_CASE(ClampCase)

std::vector<ClampCase> ClampCases() {
  return {{"t1", 91, 1, 8, 8, 1.0f}, {"t5_strided", 92, 5, 17, 20, 2.5f}, {"t3_limit8", 93, 3, 33, 33, 8.0f}};
}

using ClampTest = OpTest<ClampCase>;

TEST_P(ClampTest, MatchesReference) {
  SCOPED_TRACE(Trace());
  std::mt19937_64 rng(c().seed);
  std::vector<float> x = RandomFloats(static_cast<size_t>(c().rows * c().stride), rng, 3.0f * c().limit);
  x[0] = c().limit;
  if (c().cols > 4) {
    x[1] = -c().limit;
    x[2] = std::numeric_limits<float>::infinity();
    x[3] = -std::numeric_limits<float>::infinity();
  }
  const Tensor xt = PutF32(x, c().rows, c().cols, c().stride);
  backend_->Clamp(xt, c().limit);
  std::vector<float> want = x;
  for (int64_t r = 0; r < c().rows; ++r) {
    for (int64_t i = 0; i < c().cols; ++i) {
      float& v = want[r * c().stride + i];
      v = v > c().limit ? c().limit : (v < -c().limit ? -c().limit : v);
    }
  }
  ExpectEqualSeq<float>(Get<float>(xt.data, x.size()), want, "clamped");
}

ADAK_INSTANTIATE(Clamp, ClampTest, ClampCase, ClampCases());

// ---- The registry itself ----

TEST(BackendRegistry, ListsCpuFirstAndCreatesEveryAvailableBackendByName) {
  ASSERT_FALSE(RegisteredBackends().empty());
  EXPECT_EQ(RegisteredBackends()[0].name, "cpu");
  for (const BackendRegistration& r : RegisteredBackends()) {
    if (!r.available()) {
      EXPECT_EQ(CreateBackend(r.name).status().code(), absl::StatusCode::kFailedPrecondition) << r.name;
      continue;
    }
    absl::StatusOr<std::unique_ptr<Backend>> b = CreateBackend(r.name, {.num_threads = 1});
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ((*b)->name(), r.name);
  }
}

TEST(BackendRegistry, UnknownNameIsInvalidArgumentNamingTheRegisteredOnes) {
  const absl::Status s = CreateBackend("tpu").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'tpu'"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find("cpu"), std::string_view::npos) << s;
}

}  // namespace
}  // namespace adak::engine
