#include "fuzz/fuzz_model.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "base/check.h"
#include "engine/model.h"
#include "engine/routing_weights.h"

namespace adak::fuzz {

const server::ServiceContext& DefaultContext() {
  static const server::ServiceContext* context = [] {
    const char* env = std::getenv("ADAK_FUZZ_MODEL");
    const std::filesystem::path dir = env != nullptr ? env : ADAK_SOURCE_DIR "/models/stories-moe-small";
    absl::StatusOr<std::unique_ptr<engine::Model>> model = engine::LoadModel(dir);
    if (!model.ok()) {
      std::fprintf(stderr, "fuzzer: cannot load the model %s: %s\n", dir.c_str(), model.status().ToString().c_str());
      std::abort();
    }
    // The model's allocator profiles too, as scripts/run.sh loads them, so that Ada-K requests (and profile
    // names) get past validation.
    auto* weights = new engine::RoutingWeights;  // lives as long as the process
    for (const char* file : {"allocator.safetensors", "allocator-eco.safetensors"}) {
      const std::filesystem::path allocator = dir / file;
      if (!std::filesystem::exists(allocator)) continue;
      const absl::Status loaded = engine::LoadAllocator(allocator, (*model)->config, weights);
      if (!loaded.ok()) {
        std::fprintf(stderr, "fuzzer: cannot load %s: %s\n", allocator.c_str(), loaded.ToString().c_str());
        std::abort();
      }
    }
    auto* out = new server::ServiceContext;
    out->model = model->release();  // lives as long as the process
    out->routing_weights = weights;
    out->model_name = dir.filename().string();
    return out;
  }();
  return *context;
}

}  // namespace adak::fuzz
