// The backend registry: the one table of every backend compiled into the binary, used by CreateBackend and
// iterated by the conformance suite (tests/engine/backend_conformance_test.cc).
//
// A new backend joins by adding its line to kBackends (guarded by its build option), e.g.
//   {"cuda", &CudaDevicePresent, &CreateCudaBackend},
// where CudaDevicePresent() returns false without a device, so its conformance cases GTEST_SKIP. An explicit
// table rather than self-registering static objects: a static library drops an object file nothing references,
// and with it the registrar.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "engine/backend.h"
#include "engine/cpu_backend.h"
#ifdef ADAK_HAVE_CUDA
#include "engine/cuda_backend.h"
#endif

namespace adak::engine {
namespace {

bool Always() { return true; }

absl::StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(const BackendOptions& options) {
  return std::make_unique<CpuBackend>(options.num_threads, options.dot_precision);
}

#ifdef ADAK_HAVE_CUDA
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const BackendOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> b, CudaBackend::Create(options.device_index, options.dot_precision));
  return b;
}
#endif

constexpr BackendRegistration kBackends[] = {
    {"cpu", &Always, &CreateCpuBackend},
#ifdef ADAK_HAVE_CUDA
    {"cuda", &CudaDevicePresent, &CreateCudaBackend},
#endif
};

}  // namespace

std::span<const BackendRegistration> RegisteredBackends() { return kBackends; }

const BackendRegistration* FindBackend(std::string_view name) {
  const auto it = std::find_if(std::begin(kBackends), std::end(kBackends),
                               [&](const BackendRegistration& r) { return r.name == name; });
  return it == std::end(kBackends) ? nullptr : &*it;
}

bool BackendAvailable(std::string_view name) {
  const BackendRegistration* r = FindBackend(name);
  return r != nullptr && r->available();
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(std::string_view name, const BackendOptions& options) {
  const BackendRegistration* it = FindBackend(name);
  if (it == nullptr) {
    std::vector<std::string> names;
    for (const BackendRegistration& r : kBackends) names.emplace_back(r.name);
    return absl::InvalidArgumentError(
        absl::StrCat("backend '", std::string(name), "' is not registered; registered: ", absl::StrJoin(names, ", ")));
  }
  if (!it->available()) {
    return absl::FailedPreconditionError(
        absl::StrCat("backend '", std::string(name), "' has no device on this machine"));
  }
  return it->create(options);
}

}  // namespace adak::engine
