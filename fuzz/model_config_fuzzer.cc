// libFuzzer target: config.json of a downloaded checkpoint (ParseModelConfig: every architecture's keys,
// types, ranges and consistency checks). Any input must come back as a config or an error Status.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)adak::engine::ParseModelConfig(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
