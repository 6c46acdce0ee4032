// gpu_logits: writes a make-model checkpoint of one architecture and the logits our engine gives for a fixed
// prompt on every backend named, as JSON, for bench/gpu/compare_transformers.py to check against Hugging Face
// transformers (bench/gpu/verify.sh runs both; docs/gpu.md).
//
//   gpu_logits --arch olmoe --dir /tmp/m-olmoe --out /tmp/olmoe.json [--devices cpu,cuda] [--tokens 24]
//
// The model: the architecture's small make-model defaults with 16 experts top-4 (routing that matters), seed 7.
// JSON: {"arch", "dir", "vocab", "ids": [n], "<device>": [n * vocab] all-position logits (fp32 dot products, fp32
// KV cache, native top-k routing), "<device>_k": [layers][n] experts each token ran}. Exits 1 on any error
// (a device that is not there included), printing it.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "engine/device.h"
#include "engine/model.h"
#include "engine/model_config.h"
#include "engine/session.h"
#include "nlohmann/json.hpp"
#include "testing/make_model.h"

namespace {

absl::Status Run(int argc, char** argv) {
  std::string arch_name = "olmoe", dir, out_path, devices = "cpu,cuda";
  int64_t tokens = 24;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--arch") {
      arch_name = value;
    } else if (flag == "--dir") {
      dir = value;
    } else if (flag == "--out") {
      out_path = value;
    } else if (flag == "--devices") {
      devices = value;
    } else if (flag == "--tokens") {
      if (!absl::SimpleAtoi(value, &tokens) || tokens < 1 || tokens > 4096) {
        return absl::InvalidArgumentError("--tokens must be an integer in [1, 4096], got " + value);
      }
    } else {
      return absl::InvalidArgumentError("unknown flag " + flag + " (--arch --dir --out --devices --tokens)");
    }
  }
  if (dir.empty() || out_path.empty()) return absl::InvalidArgumentError("--dir and --out are required");
  absl::StatusOr<adak::engine::Architecture> arch = adak::engine::ParseArchitecture(arch_name);
  if (!arch.ok()) return arch.status();
  adak::testing::MakeModelParams params;
  params.arch = *arch;
  params.seed = 7;
  params.overrides = {{"num_experts", "16"}, {"num_experts_per_tok", "4"}};
  if (absl::Status s = adak::testing::MakeModel(params, dir); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<adak::engine::Model>> model = adak::engine::LoadModel(dir);
  if (!model.ok()) return model.status();

  std::vector<int32_t> ids;
  for (int64_t i = 0; i < tokens; ++i) ids.push_back(static_cast<int32_t>((i * 37 + 11) % 256));
  nlohmann::json out;
  out["arch"] = arch_name;
  out["dir"] = dir;
  out["vocab"] = (*model)->config.vocab_size;
  out["ids"] = ids;
  for (const std::string& name : std::vector<std::string>(absl::StrSplit(devices, ','))) {
    absl::StatusOr<adak::engine::DeviceSpec> device = adak::engine::ParseDevice(name);
    if (!device.ok()) return device.status();
    adak::engine::SessionOptions options;
    options.device = *device;
    options.num_threads = 0;
    absl::StatusOr<std::unique_ptr<adak::engine::Session>> session = adak::engine::Session::Create(**model, options);
    if (!session.ok()) return session.status();
    adak::engine::AppendOptions append;
    append.all_logits = true;
    adak::engine::AppendResult result;
    if (absl::Status s = (*session)->Append(ids, append, &result); !s.ok()) return s;
    out[name] = result.logits;
    out[name + "_k"] = result.routed_k;
    std::cout << arch_name << " on " << name << ": " << result.logits.size() << " logits\n";
  }
  std::ofstream(out_path) << out.dump();
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const absl::Status s = Run(argc, argv);
    if (!s.ok()) {
      std::cerr << "gpu_logits: " << s << "\n";
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {  // the JSON writer's and the allocator's
    std::cerr << "gpu_logits: " << e.what() << "\n";
    return 1;
  }
}
