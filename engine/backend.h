// The compute backend interface: device memory and the batch-level ops of the MoE forward pass.
//
// A backend owns its device (the CPU backend: a fixed worker pool; a CUDA backend: a device and a
// stream). The model runner issues ops on whole batches through this interface only, so a new backend
// implements the same ops and nothing else: no op calls back to the host per token, every tensor an op
// touches lives in device memory (allocated with Allocate or returned by PrepareWeight), and results reach
// the host only through Download. Ops are ordered as issued and may run asynchronously; Synchronize
// waits and surfaces any device error as absl::Status (Internal). A backend is used by one thread at a
// time (the scheduler thread); it is not thread-safe.
//
// Getting one: CreateBackend(name, options) builds any backend of the registry (backend_registry.cc); the
// registry is one table there, and every backend in it runs the conformance suite
// (tests/engine/backend_conformance_test.cc) against plain references. RegisteredBackends and CreateBackend are
// thread-safe (the table is constant).
//
// Shape legend (engine/README.md): T tokens, H hidden, E experts, KM max chosen experts, I intermediate.
#ifndef ADAK_ENGINE_BACKEND_H_
#define ADAK_ENGINE_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/dtype.h"
#include "engine/tensor_view.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/moe_routing.h"

namespace adak::engine {

// A non-owning 2-D view of device memory: rows x cols, row stride `stride` elements.
struct Tensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t stride = 0;

  [[nodiscard]] bool present() const { return data != nullptr; }
  [[nodiscard]] float* f32() const { return static_cast<float*>(data); }
};

// Owned device memory; freed by the destructor.
class DeviceBuffer {
 public:
  virtual ~DeviceBuffer() = default;
  [[nodiscard]] virtual void* data() const = 0;
  [[nodiscard]] virtual size_t bytes() const = 0;
  // A dense [rows, cols] f32/i32 view of the start of the buffer. REQUIRES: it fits.
  [[nodiscard]] Tensor View(DType dtype, int64_t rows, int64_t cols) const {
    return Tensor{data(), dtype, rows, cols, cols};
  }
};

// A SwiGLU MLP's weights on the device: down(silu(gate x) * up x).
struct MlpTensors {
  Tensor gate;  // [I, H]
  Tensor up;    // [I, H]
  Tensor down;  // [H, I]
};

// Batch layout for attention over the paged KV cache (all device pointers).
struct AttentionBatch {
  int64_t num_tokens = 0;                 // T
  const int32_t* positions = nullptr;     // [T]
  const int32_t* token_seq = nullptr;     // [T] index of the token's sequence in block_tables
  const int32_t* slots = nullptr;         // [T] KV slot written by the token (block * block_size + offset)
  const int32_t* block_tables = nullptr;  // [S, max_blocks_per_seq]
  int64_t max_blocks_per_seq = 0;
};

struct AttentionArgs {
  Tensor q;  // [T, heads * head_dim] after RoPE
  Tensor k;  // [T, kv_heads * head_dim] after RoPE
  Tensor v;  // [T, kv_heads * head_dim]
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;
  void* k_cache = nullptr;  // this layer's [blocks, block_size, kv_heads, head_dim] of cache_dtype
  void* v_cache = nullptr;
  DType cache_dtype = DType::kF32;  // kF32 or kBF16 (KvCache::dtype)
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  AttentionBatch batch;
  Tensor out;  // [T, heads * head_dim]
};

struct MoeArgs {
  Tensor x;  // [T, H] router / expert input
  // Fused gate rows [E + Ea + M, H]: the router's E rows, then the Ada-K allocators' Ea (P * E for P
  // profiles, or 0), then M null-expert rows: one GEMM gives every routing logit of the layer.
  Tensor gate;
  int64_t num_experts = 0;           // E
  int64_t allocator_rows = 0;        // Ea
  uint32_t allocator_present = ~0u;  // bit p: profile p has an allocator in this layer
  // [P] or empty (every profile version 1): device pointers to each version-2 profile's U and b.
  std::span<const kernels::AllocatorExtras> allocator_extras;
  int64_t null_rows = 0;                        // M
  bool renormalize = false;                     // the model's native rule (norm_topk_prob)
  int64_t layer = 0;                            // model layer index (keys sampled routing draws)
  const kernels::TokenRoute* routes = nullptr;  // device [T]: each token's policy
  std::span<const MlpTensors> experts;          // E (the caller keeps them alive for the call)
  // Optional shared expert, applied to every token, scaled by sigmoid(shared_gate x) when present.
  MlpTensors shared;
  Tensor shared_gate;        // [1, H]
  Tensor out;                // [T, H], accumulated into (+=)
  int32_t* k_out = nullptr;  // device [T]: experts each token ran (always written)
  // Optional routing record, device [T, E]: expert ids in descending router probability (-1 past k) and
  // their combine weights.
  int32_t* ids_out = nullptr;
  float* weights_out = nullptr;
};

class Backend {
 public:
  virtual ~Backend() = default;
  [[nodiscard]] virtual std::string_view name() const = 0;

  // Device memory. Errors: ResourceExhausted when the device cannot hold `bytes`.
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<DeviceBuffer>> Allocate(size_t bytes) = 0;
  [[nodiscard]] virtual absl::Status Upload(const void* host, size_t bytes, void* device) = 0;
  [[nodiscard]] virtual absl::Status Download(const void* device, size_t bytes, void* host) = 0;
  // A device tensor for a checkpoint weight ([rows, cols] = shape, or [1, n] for vectors). The CPU backend
  // returns a zero-copy view; a device backend copies (the backend owns the copy for its lifetime).
  // Errors: InvalidArgument for a tensor of more than 2 dimensions.
  [[nodiscard]] virtual absl::StatusOr<Tensor> PrepareWeight(const TensorView& w) = 0;

  // out[t] = table[ids[t]] (f32). ids: device [T].
  virtual void Embedding(const Tensor& table, const int32_t* ids, const Tensor& out) = 0;
  // out = RMSNorm(x) * w row-wise over x.cols (out may equal x).
  virtual void RmsNorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) = 0;
  // out (=|+=) x · w^T (+ bias). x [T, K] f32, w [N, K], bias [1, N] or absent, out [T, N] f32.
  virtual void Linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out, bool accumulate) = 0;
  // In-place rotary embedding over x viewed as [T, heads, head_dim].
  virtual void Rope(const Tensor& x, int64_t heads, int64_t head_dim, const int32_t* positions, double theta) = 0;
  // Writes k, v into the cache slots, then causal paged attention into out.
  virtual void Attention(const AttentionArgs& args) = 0;
  // Routing (each token by its own policy), the padding-free dispatch plan, the routed experts and the
  // optional shared expert, accumulated into out.
  virtual void Moe(const MoeArgs& args) = 0;
  // out += MLP(x) (dense layers).
  virtual void Mlp(const Tensor& x, const MlpTensors& w, const Tensor& out) = 0;
  // out[i] = x[rows[i]] for i < out.rows. rows: device [out.rows].
  virtual void GatherRows(const Tensor& x, const int32_t* rows, const Tensor& out) = 0;
  // Clamps every element of x to [-limit, limit] (OLMoE clip_qkv).
  virtual void Clamp(const Tensor& x, float limit) = 0;

  // Waits for all issued ops. Errors: Internal naming the failed op (device backends).
  [[nodiscard]] virtual absl::Status Synchronize() = 0;
};

struct BackendOptions {
  int num_threads = 0;  // worker threads of a CPU backend; <= 0 = all hardware threads
  // Dot products with BF16 weights (kernels::DotPrecision): kFp32 is exact; kBf16 rounds the activations to
  // bf16 (vdpbf16ps, as llama.cpp). A CPU backend applies it to BF16 weights where the CPU supports it
  // (kernels::Bf16DotSupported()) and computes exactly elsewhere.
  kernels::DotPrecision dot_precision = kernels::DotPrecision::kFp32;
  int device_index = 0;  // device ordinal of a device backend (cuda:N); ignored by the CPU backend
};

// One entry of the backend registry.
struct BackendRegistration {
  std::string_view name;  // "cpu", "cuda", ...
  // Whether the backend can run here (a device backend: a device is present). The conformance suite skips an
  // absent backend's cases; CreateBackend refuses it.
  bool (*available)() = nullptr;
  absl::StatusOr<std::unique_ptr<Backend>> (*create)(const BackendOptions& options) = nullptr;
};

// Every backend compiled into this binary, in registration order ("cpu" first), available here or not.
[[nodiscard]] std::span<const BackendRegistration> RegisteredBackends();

// The registration named `name`, or nullptr when no such backend is compiled in.
[[nodiscard]] const BackendRegistration* FindBackend(std::string_view name);

// Whether the backend named `name` is compiled in and has a device here (CreateBackend would build it).
[[nodiscard]] bool BackendAvailable(std::string_view name);

// The backend registered as `name`. Errors: InvalidArgument for an unknown name (naming the registered
// ones); FailedPrecondition when the backend is registered but has no device here;
// whatever the backend's own construction returns.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(std::string_view name,
                                                                     const BackendOptions& options = {});

}  // namespace adak::engine

#endif  // ADAK_ENGINE_BACKEND_H_
