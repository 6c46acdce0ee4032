// The `--device` spelling of a compute backend: which registered backend (engine/backend.h) runs the model, and
// for a device backend, which device ordinal.
//
// ParseDevice accepts "cpu", "cuda" (= "cuda:0") and "cuda:N" with N an integer in [0, kMaxDeviceIndex]; it
// checks the spelling only. Whether the backend is compiled in and has a device here is CreateBackend's answer
// (InvalidArgument "not registered", FailedPrecondition "has no device on this machine"), given
// DeviceSpec::backend as its name and DeviceSpec::index as BackendOptions::device_index. Stateless; safe from
// any thread.
#ifndef ADAK_ENGINE_DEVICE_H_
#define ADAK_ENGINE_DEVICE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace adak::engine {

// The largest device ordinal ParseDevice accepts ("cuda:63").
inline constexpr int kMaxDeviceIndex = 63;

struct DeviceSpec {
  std::string backend = "cpu";  // a backend registry name: "cpu", "cuda"
  int index = 0;                // device ordinal of a device backend; always 0 for "cpu"
};

// "cpu", "cuda" or "cuda:N" (0 <= N <= kMaxDeviceIndex, decimal digits only). Errors: InvalidArgument naming
// the text (its first 32 characters) and the accepted forms, for an unknown backend, an index on "cpu"
// ("cpu:N"), or a missing, non-numeric or out-of-range index.
[[nodiscard]] absl::StatusOr<DeviceSpec> ParseDevice(std::string_view text);

// The canonical spelling: "cpu" for the CPU backend, "<backend>:<index>" for a device backend ("cuda:0").
[[nodiscard]] std::string DeviceName(const DeviceSpec& device);

}  // namespace adak::engine

#endif  // ADAK_ENGINE_DEVICE_H_
