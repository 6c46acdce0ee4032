// A non-owning, read-only view of a tensor in host memory (usually a region of an mmapped checkpoint).
//
// The memory is owned elsewhere (the WeightStore that mapped it); a view is valid while its owner lives.
// Row-major, contiguous. Plain value type; thread-compatible.
#ifndef ADAK_ENGINE_TENSOR_VIEW_H_
#define ADAK_ENGINE_TENSOR_VIEW_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/dtype.h"

namespace adak::engine {

struct TensorView {
  const std::byte* data = nullptr;  // nullptr: the tensor is absent (an optional weight).
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::string name;  // checkpoint name, for error messages.

  [[nodiscard]] bool present() const { return data != nullptr; }
  [[nodiscard]] int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  [[nodiscard]] size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype); }
  [[nodiscard]] int64_t dim(size_t i) const { return shape.at(i); }
};

}  // namespace adak::engine

#endif  // ADAK_ENGINE_TENSOR_VIEW_H_
