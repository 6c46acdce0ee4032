// Reading and writing safetensors checkpoints (https://huggingface.co/docs/safetensors format).
//
// SafetensorsFile mmaps one file read-only and validates its header completely at Open: the 8-byte length,
// the JSON, every entry's dtype (BF16/F16/F32/I32/I64), shape, and data_offsets (in bounds, begin <= end,
// end - begin == numel * dtype size, no two tensors overlapping, the data section fully covered). A file that
// fails any check is refused with an error naming the file and the tensor. WeightStore opens a model
// directory: `model.safetensors`, or the shards listed by `model.safetensors.index.json` (each shard's
// tensors must be the ones the index assigns to it). Both are immutable after Open and safe to share
// across threads.
#ifndef ADAK_ENGINE_SAFETENSORS_H_
#define ADAK_ENGINE_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tensor_view.h"

namespace adak::engine {

class SafetensorsFile {
 public:
  // Errors: NotFound (no file), InvalidArgument naming the file and what is wrong (truncated, bad header
  // length, bad JSON, unknown dtype, offsets out of range or inconsistent with shape, overlapping tensors).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // nullptr when absent. The view's `name` is the tensor name.
  [[nodiscard]] const TensorView* Find(std::string_view name) const;
  [[nodiscard]] const std::map<std::string, TensorView, std::less<>>& tensors() const { return tensors_; }
  // The `__metadata__` string map (empty when absent).
  [[nodiscard]] const std::map<std::string, std::string, std::less<>>& metadata() const { return metadata_; }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, TensorView, std::less<>> tensors_;
  std::map<std::string, std::string, std::less<>> metadata_;
};

// All tensors of a model directory, single-file or sharded.
class WeightStore {
 public:
  // Errors: NotFound when the directory has neither model.safetensors nor model.safetensors.index.json;
  // InvalidArgument for a bad index (names the index and the entry) or any file error above.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<WeightStore>> Open(const std::filesystem::path& dir);

  // The tensor, checked against `shape`. Errors: NotFound "tensor 'X' not found in <files>";
  // InvalidArgument "tensor 'X' in <file> has shape [a, b], expected [c, d]" or a dtype other than
  // BF16/F16/F32.
  [[nodiscard]] absl::StatusOr<TensorView> Get(std::string_view name, std::span<const int64_t> shape) const;
  [[nodiscard]] const TensorView* Find(std::string_view name) const;
  // The file that holds `name` (for error messages); empty when absent.
  [[nodiscard]] std::filesystem::path FileOf(std::string_view name) const;
  [[nodiscard]] const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t, std::less<>> index_;  // tensor name -> files_ position
};

// One tensor to write: raw little-endian bytes of `shape` in `dtype`.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;
};

// Writes a safetensors file (header padded with spaces to 8 bytes, tensors in the given order).
// Errors: InvalidArgument when a tensor's byte size does not match its shape; Internal on I/O failure.
[[nodiscard]] absl::Status WriteSafetensors(const std::filesystem::path& path, std::span<const TensorToWrite> tensors,
                                            const std::map<std::string, std::string>& metadata = {});

}  // namespace adak::engine

#endif  // ADAK_ENGINE_SAFETENSORS_H_
