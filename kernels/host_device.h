// ADAK_HD marks a function that runs on the host and on a CUDA device: `__host__ __device__` under nvcc,
// nothing under a host compiler. Such functions (the routing rule, the dispatch-plan steps, the tile schedule
// of kernels/cuda/) are plain code over raw pointers, so the CPU test suite runs exactly what the device runs.
#ifndef ADAK_KERNELS_HOST_DEVICE_H_
#define ADAK_KERNELS_HOST_DEVICE_H_

#if defined(__CUDACC__)
#define ADAK_HD __host__ __device__
#else
#define ADAK_HD
#endif

#endif  // ADAK_KERNELS_HOST_DEVICE_H_
