#include "kernels/cuda/cublas_loader.h"

#include <dlfcn.h>

namespace adak::kernels::cuda {
namespace {

template <class F>
bool Resolve(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  return *out != nullptr;
}

const CublasApi* Load() {
  void* lib = nullptr;
  for (const char* name : {"libcublas.so.13", "libcublas.so"}) {
    lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib != nullptr) break;
  }
  if (lib == nullptr) return nullptr;
  static CublasApi api;
  if (!Resolve(lib, "cublasCreate_v2", &api.create) || !Resolve(lib, "cublasDestroy_v2", &api.destroy) ||
      !Resolve(lib, "cublasSetStream_v2", &api.set_stream) || !Resolve(lib, "cublasGemmEx", &api.gemm_ex)) {
    return nullptr;
  }
  Resolve(lib, "cublasGemmGroupedBatchedEx", &api.gemm_grouped_batched_ex);
  return &api;
}

}  // namespace

const CublasApi* Cublas() {
  static const CublasApi* const api = Load();
  return api;
}

}  // namespace adak::kernels::cuda
