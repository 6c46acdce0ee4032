#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "cli/commands.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "cli/flags.h"
#include "engine/kv_cache.h"
#include "engine/routing_weights.h"

namespace adak::cli {

void AddModelFlags(CLI::App* command, ModelFlags* flags) {
  AddString(command, "model", &flags->model,
            "Hugging Face model directory (config.json, *.safetensors, tokenizer.json)", "DIR")
      ->required();
  AddInt(command, "threads", &flags->threads, "engine worker threads; 0 = all hardware threads", 0, 1024);
  AddString(command, "kv-cache-dtype", &flags->kv_cache_dtype,
            "KV cache element type: f32, or bf16 (half the bytes; attention still computes in fp32)", "TYPE");
  AddString(command, "matmul-precision", &flags->matmul_precision,
            "dot products with BF16 weights: fp32 (exact) or bf16 (activations rounded to bf16, vdpbf16ps, as "
            "llama.cpp); only CPUs with AVX512_BF16 have the bf16 path",
            "PRECISION");
  AddString(command, "device", &flags->device, "compute backend: cpu, cuda (the first GPU) or cuda:N (GPU N)",
            "DEVICE");
  AddRoutingFlags(command, &flags->routing);
}

absl::StatusOr<DType> KvCacheDType(const ModelFlags& flags) {
  absl::StatusOr<DType> dtype = engine::ParseKvCacheDType(flags.kv_cache_dtype);
  if (!dtype.ok()) return absl::InvalidArgumentError(absl::StrCat("--kv-cache-dtype: ", dtype.status().message()));
  return *dtype;
}

absl::StatusOr<kernels::DotPrecision> MatMulPrecision(const ModelFlags& flags) {
  absl::StatusOr<kernels::DotPrecision> precision = engine::ParseDotPrecision(flags.matmul_precision);
  if (!precision.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--matmul-precision: ", precision.status().message()));
  }
  return *precision;
}

absl::StatusOr<engine::DeviceSpec> ParseDeviceFlag(std::string_view text) {
  absl::StatusOr<engine::DeviceSpec> device = engine::ParseDevice(text);
  if (!device.ok()) return absl::InvalidArgumentError(absl::StrCat("--device: ", device.status().message()));
  return *device;
}

absl::StatusOr<LoadedModel> LoadModelAndRouting(const ModelFlags& flags) {
  RETURN_IF_ERROR(CheckRoutingFlags(flags.routing));  // before anything is loaded
  RETURN_IF_ERROR(KvCacheDType(flags).status());
  RETURN_IF_ERROR(MatMulPrecision(flags).status());
  RETURN_IF_ERROR(ParseDeviceFlag(flags.device).status());
  LoadedModel m;
  ASSIGN_OR_RETURN(m.model, engine::LoadModel(flags.model));
  RETURN_IF_ERROR(LoadRoutingFiles(flags.routing.files, m.model->config, &m.weights));
  ASSIGN_OR_RETURN(m.routing, RoutingFromFlags(flags.routing, m.model->config, m.weights));
  RETURN_IF_ERROR(engine::ValidateRoutingParams(m.routing, m.model->config, m.weights));
  return m;
}

absl::StatusOr<LoadedSession> OpenSession(const ModelFlags& flags) {
  ASSIGN_OR_RETURN(LoadedModel m, LoadModelAndRouting(flags));
  LoadedSession s;
  s.model = std::move(m.model);
  s.routing = m.routing;
  engine::SessionOptions options;
  options.num_threads = flags.threads;
  ASSIGN_OR_RETURN(options.kv_cache_dtype, KvCacheDType(flags));
  ASSIGN_OR_RETURN(options.dot_precision, MatMulPrecision(flags));
  ASSIGN_OR_RETURN(options.device, ParseDeviceFlag(flags.device));
  ASSIGN_OR_RETURN(s.session, engine::Session::Create(*s.model, options, std::move(m.weights)));
  return s;
}

absl::Status ReadDataFile(const std::string& path, std::string* text) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("--data ", path, " is a directory, not a text file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open --data file ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  *text = ss.str();
  return absl::OkStatus();
}

std::string RoutingSummary(const engine::FlopCounter& f) {
  return absl::StrFormat(
      "mean_k=%.4f expert_activations=%d expert_flops=%d expert_flops_native=%d "
      "expert_flops_saved=%d savings=%.2f%%",
      f.mean_k(), f.expert_activations(), f.expert_flops(), f.native_expert_flops(), f.expert_flops_saved(),
      100.0 * f.savings_ratio());
}

std::string MeanKPerLayer(const engine::FlopCounter& f, int64_t num_layers) {
  std::string out = "[";
  for (int64_t l = 0; l < num_layers; ++l) out += absl::StrFormat("%s%.3f", l ? " " : "", f.mean_k(l));
  return out + "]";
}

}  // namespace adak::cli
