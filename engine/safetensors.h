// Reading and writing safetensors checkpoints (https://huggingface.co/docs/safetensors format).
//
// SafetensorsFile mmaps one file read-only and validates its header completely at Open: the 8-byte length,
// the JSON, every entry's dtype (BF16/F16/F32/I32/I64), shape, and data_offsets (in bounds, begin <= end,
// end - begin == numel * dtype size, no two tensors overlapping, the data section fully covered). A file that
// fails any check is refused with an error naming the file and the tensor. WeightStore opens a model
// directory: `model.safetensors`, or the shards listed by `model.safetensors.index.json` (each shard's
// tensors must be the ones the index assigns to it). Both are immutable after Open and safe to share
// across threads. WriteSafetensors writes a file from memory; SafetensorsWriter streams one of any size
// (e.g. a multi-GB random checkpoint from testing/make_model.h) and is used by one thread at a time.
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
  // Every tensor name of every file, sorted.
  [[nodiscard]] std::vector<std::string> TensorNames() const;
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
  // Errors: NotFound when the directory has neither model.safetensors nor model.safetensors.index.json, or
  // when the index names a shard that does not exist (the message names the index and the shard);
  // InvalidArgument for a bad index (names the index and the entry: not JSON, no "weight_map", a non-string
  // or non-local file name, a tensor missing from its shard or a shard holding a tensor the index does not
  // assign to it) or any file error above. model.safetensors.index.json wins when both are present.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<WeightStore>> Open(const std::filesystem::path& dir);

  // The tensor, checked against `shape`. Errors: NotFound "tensor 'X' not found in <files>";
  // InvalidArgument "tensor 'X' in <file> has shape [a, b], expected [c, d]" or a dtype other than
  // BF16/F16/F32.
  [[nodiscard]] absl::StatusOr<TensorView> Get(std::string_view name, std::span<const int64_t> shape) const;
  [[nodiscard]] const TensorView* Find(std::string_view name) const;
  // Every tensor name of every file, sorted.
  [[nodiscard]] std::vector<std::string> TensorNames() const;
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

// Rewrites the safetensors file at `path` with `updates` merged into its metadata (same tensors and bytes),
// through a temporary file renamed over it. Errors: the reader's (NotFound, a corrupt file), WriteSafetensors'.
[[nodiscard]] absl::Status UpdateSafetensorsMetadata(const std::filesystem::path& path,
                                                     const std::map<std::string, std::string>& updates);

// The header entry of one tensor written by SafetensorsWriter.
struct SafetensorsTensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  [[nodiscard]] uint64_t nbytes() const;  // numel * dtype size
};

struct SafetensorsWriteOptions {
  // Write with O_DIRECT, bypassing the page cache (several times faster for multi-GB files, and it does not
  // evict everyone else's cache). The header is then padded with spaces to a 4096-byte boundary, which is
  // still a valid safetensors header. Falls back to buffered writes where the filesystem refuses O_DIRECT.
  bool direct_io = false;
};

// Streams a safetensors file without holding its data in memory: Create writes the header (offsets laid out
// back to back in declaration order), Append writes the data section in any number of pieces, Finish checks
// that every declared byte was written and moves the file into place. Until Finish succeeds the data goes to
// `path` + ".partial", which the destructor removes, so a failed or abandoned write never leaves a file that
// looks complete at `path`. One writer per file; not thread-safe (one thread at a time may call it).
class SafetensorsWriter {
 public:
  // Preallocates the whole file. Errors: InvalidArgument for an empty or duplicate name, a "__metadata__"
  // tensor, a negative dimension or a size overflow; ResourceExhausted when the disk cannot hold the file;
  // another errno-derived code (e.g. PermissionDenied, NotFound for a missing directory) or Internal when the
  // file cannot be created or written.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> Create(
      const std::filesystem::path& path, std::vector<SafetensorsTensorSpec> tensors,
      const std::map<std::string, std::string>& metadata = {}, const SafetensorsWriteOptions& options = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The next `bytes` of the data section (the tensors' bytes concatenated in declaration order; pieces may
  // straddle tensor boundaries). Errors: OutOfRange past the declared total (nothing is written);
  // Internal (or the errno's code) on I/O failure; FailedPrecondition after Finish or after a failure.
  [[nodiscard]] absl::Status Append(std::span<const std::byte> bytes);
  // Errors: FailedPrecondition when bytes are missing (names the first incomplete tensor) or after a failure;
  // Internal (or the errno's code) on I/O failure (write, close, rename).
  [[nodiscard]] absl::Status Finish();

  [[nodiscard]] uint64_t data_size() const { return data_size_; }          // bytes the data section needs
  [[nodiscard]] uint64_t bytes_written() const { return bytes_written_; }  // data bytes appended so far
  [[nodiscard]] uint64_t file_size() const { return 8 + header_size_ + data_size_; }
  [[nodiscard]] bool direct_io() const { return direct_; }  // O_DIRECT actually in use

 private:
  struct FreeDeleter {
    void operator()(std::byte* p) const;
  };
  SafetensorsWriter() = default;
  // Copies into the staging buffer, writing it out whenever it fills.
  absl::Status Stage(std::span<const std::byte> bytes);
  // Writes the first `n` staged bytes at file_offset_ (n is block-aligned in direct mode).
  absl::Status WriteStaged(size_t n);
  absl::Status Fail(absl::Status status);

  std::filesystem::path path_;
  std::filesystem::path partial_path_;
  int fd_ = -1;
  bool direct_ = false;
  std::unique_ptr<std::byte, FreeDeleter> buffer_;  // staging, 4096-aligned
  size_t buffer_capacity_ = 0;
  size_t buffer_fill_ = 0;
  uint64_t file_offset_ = 0;  // where the staged bytes go
  std::vector<SafetensorsTensorSpec> tensors_;
  std::vector<uint64_t> ends_;  // data_offsets end of each tensor
  uint64_t header_size_ = 0;
  uint64_t data_size_ = 0;
  uint64_t bytes_written_ = 0;
  bool failed_ = false;
  bool finished_ = false;
};

}  // namespace adak::engine

#endif  // ADAK_ENGINE_SAFETENSORS_H_
