// The CUDA backend end to end (ctest label gpu): the default model's logits and routing on "cuda" against
// "cpu", the bf16 dot-product path, and device errors as Status. Every op is also checked on its own by the
// conformance suite (backend_conformance_test.cc). Without a GPU (or without CUDA compiled in) the tests skip,
// but for the one that checks a missing device is refused cleanly.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/session.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace adak::engine {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (!BackendAvailable("cuda")) GTEST_SKIP() << "no CUDA device here"

struct ForwardRun {
  std::vector<float> logits;            // [n, V]
  std::vector<std::vector<int32_t>> k;  // [L][n]
};

// The default model over 48 fixed token ids on `device`, all-position logits and each layer's k.
ForwardRun Forward(const Model& model, const std::string& device, kernels::DotPrecision precision) {
  SessionOptions options;
  options.device.backend = device;
  options.dot_precision = precision;
  auto session = Session::Create(model, options);
  EXPECT_TRUE(session.ok()) << session.status();
  if (!session.ok()) return {};
  std::vector<int32_t> ids;
  ids.reserve(48);
  for (int32_t i = 0; i < 48; ++i) ids.push_back((i * 131 + 7) % static_cast<int32_t>(model.config.vocab_size));
  AppendOptions append;
  append.all_logits = true;
  AppendResult result;
  const absl::Status s = (*session)->Append(ids, append, &result);
  EXPECT_TRUE(s.ok()) << s;
  return {std::move(result.logits), std::move(result.routed_k)};
}

// max |a - b| / max |a|.
double RelativeDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(a[i])));
  }
  return diff / scale;
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_GPU();
    auto model = LoadModel(adak::testing::DefaultModelDir());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *std::move(model);
  }
  std::unique_ptr<Model> model_;
};

// Exact dot products on both sides: fp32 from the same BF16 weights, only the summation order differs.
TEST_F(CudaBackendTest, DefaultModelMatchesTheCpuBackend) {
  const ForwardRun cpu = Forward(*model_, "cpu", kernels::DotPrecision::kFp32);
  const ForwardRun gpu = Forward(*model_, "cuda", kernels::DotPrecision::kFp32);
  ASSERT_EQ(cpu.logits.size(), gpu.logits.size());
  ASSERT_FALSE(cpu.logits.empty());
  EXPECT_LT(RelativeDiff(cpu.logits, gpu.logits), 1e-4);
  EXPECT_EQ(cpu.k, gpu.k);
}

// bf16-rounded activations on cuBLAS's tensor cores for Linear: close to exact, not identical.
TEST_F(CudaBackendTest, Bf16DotProductsStayCloseToExact) {
  const ForwardRun exact = Forward(*model_, "cuda", kernels::DotPrecision::kFp32);
  const ForwardRun bf16 = Forward(*model_, "cuda", kernels::DotPrecision::kBf16);
  ASSERT_EQ(exact.logits.size(), bf16.logits.size());
  const double rel = RelativeDiff(exact.logits, bf16.logits);
  EXPECT_GT(rel, 0.0) << "kBf16 did not reach cuBLAS";
  EXPECT_LT(rel, 0.01);
}

// An op the kernels refuse is recorded and returned by Synchronize as Internal naming the op; nothing aborts.
TEST(CudaBackendErrors, AnOpErrorIsInternalNamingTheOp) {
  SKIP_WITHOUT_GPU();
  auto backend = CreateBackend("cuda");
  ASSERT_TRUE(backend.ok()) << backend.status();
  AttentionArgs a;
  a.heads = 1;
  a.kv_heads = 1;
  a.head_dim = 1024;  // above the kernel's limit
  a.batch.num_tokens = 1;
  (*backend)->Attention(a);
  const absl::Status s = (*backend)->Synchronize();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_NE(s.message().find("attention"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find("head_dim 1024"), std::string_view::npos) << s;
}

TEST(CudaBackendErrors, AMissingDeviceIsFailedPrecondition) {
  if (FindBackend("cuda") == nullptr) GTEST_SKIP() << "CUDA is not compiled in";
  const absl::Status s = CreateBackend("cuda", {.device_index = 63}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
}

}  // namespace
}  // namespace adak::engine
