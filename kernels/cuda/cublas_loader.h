// cuBLAS, loaded on first use with dlopen (libcublas.so.13 from the CUDA runtime's search path), so that no
// binary of the project links it: every CLI command and test process would otherwise pay ~0.4 s of start-up
// for the 600 MB cuBLAS/cuBLASLt pair. Only a CUDA backend that wants a cuBLAS GEMM loads it.
//
// Cublas() returns the table of the entry points the backend uses, or nullptr when the library is not there
// (the caller falls back to its own kernels and says so). Thread-safe (loaded once).
#ifndef ADAK_KERNELS_CUDA_CUBLAS_LOADER_H_
#define ADAK_KERNELS_CUDA_CUBLAS_LOADER_H_

#include <cublas_v2.h>

namespace adak::kernels::cuda {

// Entry points typed from cublas_v2.h's own declarations (nothing is linked).
struct CublasApi {
  decltype(&::cublasCreate_v2) create = nullptr;
  decltype(&::cublasDestroy_v2) destroy = nullptr;
  decltype(&::cublasSetStream_v2) set_stream = nullptr;
  // cublasGemmEx's C entry (the header adds a C++ overload, so decltype cannot name it).
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  // Optional (the benchmark's baseline): nullptr when this cuBLAS lacks it.
  decltype(&::cublasGemmGroupedBatchedEx) gemm_grouped_batched_ex = nullptr;
};

// The loaded API, or nullptr (no libcublas.so.13 / libcublas.so, or a missing symbol).
[[nodiscard]] const CublasApi* Cublas();

}  // namespace adak::kernels::cuda

#endif  // ADAK_KERNELS_CUDA_CUBLAS_LOADER_H_
