#include "engine/device.h"

#include "absl/strings/str_cat.h"
#include "base/strings.h"

namespace adak::engine {
namespace {

constexpr std::string_view kAcceptedForms = "cpu, cuda, cuda:N (N an integer in 0..63)";
static_assert(kMaxDeviceIndex == 63, "kAcceptedForms spells out the index range");

absl::Status BadDevice(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(
      StrCatStd("device '", text.substr(0, 32), "' ", why, "; accepted: ", kAcceptedForms));
}

}  // namespace

absl::StatusOr<DeviceSpec> ParseDevice(std::string_view text) {
  const size_t colon = text.find(':');
  const std::string_view backend = text.substr(0, colon);
  if (backend == "cpu") {
    if (colon != std::string_view::npos) return BadDevice(text, "has an index, but the cpu device takes none");
    return DeviceSpec{.backend = "cpu", .index = 0};
  }
  if (backend != "cuda") return BadDevice(text, "names no known backend");
  if (colon == std::string_view::npos) return DeviceSpec{.backend = "cuda", .index = 0};
  const std::string_view digits = text.substr(colon + 1);
  // At most 2 digits, so the range check below sees every spelling without overflow.
  bool valid = !digits.empty() && digits.size() <= 2;
  int index = 0;
  for (size_t i = 0; valid && i < digits.size(); ++i) {
    valid = digits[i] >= '0' && digits[i] <= '9';
    index = index * 10 + (digits[i] - '0');
  }
  if (!valid || index > kMaxDeviceIndex) {
    return BadDevice(text, "has an invalid device index");
  }
  return DeviceSpec{.backend = "cuda", .index = index};
}

std::string DeviceName(const DeviceSpec& device) {
  if (device.backend == "cpu") return device.backend;
  return absl::StrCat(device.backend, ":", device.index);
}

}  // namespace adak::engine
