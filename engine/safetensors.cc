#include "engine/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <system_error>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "nlohmann/json.hpp"

namespace adak::engine {
namespace {

using Json = nlohmann::json;

// The reference implementation refuses larger headers too.
constexpr uint64_t kMaxHeaderSize = 100'000'000;
// O_DIRECT alignment of offsets, sizes and buffers (covers 512- and 4096-byte logical blocks).
constexpr size_t kDirectAlign = 4096;
constexpr size_t kStagingBytes = size_t{8} << 20;

std::string ShapeString(std::span<const int64_t> shape) { return StrCatStd("[", absl::StrJoin(shape, ", "), "]"); }

bool ParseDType(std::string_view name, DType* out) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kI32, DType::kI64}) {
    if (DTypeName(t) == name) {
      *out = t;
      return true;
    }
  }
  return false;
}

// numel * element size, or false on overflow / negative dimension.
bool ByteSize(std::span<const int64_t> shape, DType dtype, uint64_t* out) {
  uint64_t n = DTypeSize(dtype);
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  *out = n;
  return true;
}

bool IsUint(const Json& j) { return j.is_number_unsigned() || (j.is_number_integer() && j.get<int64_t>() >= 0); }

struct Span {
  uint64_t begin;
  uint64_t end;
  const std::string* name;
};

using TensorMap = std::map<std::string, TensorView, std::less<>>;
using MetadataMap = std::map<std::string, std::string, std::less<>>;

// InvalidArgument "<file>: <parts>".
template <typename... Parts>
absl::Status Invalid(const std::string& file, const Parts&... parts) {
  return absl::InvalidArgumentError(StrCatStd(file, ": ", parts...));
}

// A regular file of at least the 8-byte header length, mapped read-only.
struct MappedFile {
  void* map = nullptr;
  uint64_t size = 0;
};

absl::StatusOr<MappedFile> MapReadOnly(const std::string& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return absl::NotFoundError(StrCatStd("safetensors file not found: ", file));
    return absl::ErrnoToStatus(err, StrCatStd("cannot open ", file));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Invalid(file, "not a regular file");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    return Invalid(file, "truncated: the file has ", file_size, " bytes, fewer than the 8-byte header length");
  }
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return absl::ErrnoToStatus(map_err, StrCatStd("cannot mmap ", file));
  return MappedFile{map, file_size};
}

// The header's JSON object; its byte length (the little-endian u64 that starts the file) into *header_size.
absl::StatusOr<Json> ParseHeaderJson(const std::string& file, const std::byte* base, uint64_t file_size,
                                     uint64_t* header_size) {
  uint64_t size = 0;
  for (int i = 7; i >= 0; --i) size = (size << 8) | static_cast<uint8_t>(base[i]);
  if (size > file_size - 8) {
    return Invalid(file, "header length ", size, " exceeds the ", file_size - 8,
                   " bytes that follow it (truncated or not a safetensors file)");
  }
  if (size > kMaxHeaderSize) return Invalid(file, "header length ", size, " exceeds ", kMaxHeaderSize);
  if (size < 2) return Invalid(file, "header length ", size, " is too small for a JSON object");
  const char* header_begin = reinterpret_cast<const char*>(base + 8);
  Json header;
  try {
    header = Json::parse(header_begin, header_begin + size);
  } catch (const Json::exception& e) {
    return Invalid(file, "bad header JSON: ", e.what());
  }
  if (!header.is_object()) return Invalid(file, "bad header JSON: the header is not a JSON object");
  *header_size = size;
  return header;
}

absl::Status ParseMetadata(const std::string& file, const Json& entry, MetadataMap* metadata) {
  if (!entry.is_object()) return Invalid(file, "__metadata__ is not a JSON object");
  for (auto m = entry.begin(); m != entry.end(); ++m) {
    if (!m.value().is_string()) {
      return Invalid(file, "__metadata__ value of '", m.key(), "' is not a string: ", m.value().dump());
    }
    (*metadata)[m.key()] = m.value().get<std::string>();
  }
  return absl::OkStatus();
}

// The dtype and shape of tensor entry `name` into `view`.
absl::Status ParseDTypeAndShape(const std::string& file, const std::string& name, const Json& entry, TensorView* view) {
  auto dtype_it = entry.find("dtype");
  auto shape_it = entry.find("shape");
  if (dtype_it == entry.end() || !dtype_it->is_string()) return Invalid(file, "tensor '", name, "': no string 'dtype'");
  const std::string dtype_name = dtype_it->get<std::string>();
  if (!ParseDType(dtype_name, &view->dtype)) {
    return Invalid(file, "tensor '", name, "' has unsupported dtype '", dtype_name,
                   "' (supported: BF16, F16, F32, I32, I64)");
  }
  if (shape_it == entry.end() || !shape_it->is_array()) return Invalid(file, "tensor '", name, "': no 'shape' list");
  for (const Json& d : *shape_it) {
    if (!IsUint(d) || d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return Invalid(file, "tensor '", name, "': shape ", shape_it->dump(), " is not a list of non-negative integers");
    }
    view->shape.push_back(d.get<int64_t>());
  }
  return absl::OkStatus();
}

// Tensor entry `name`: its view into `data` and its byte range [begin, end) of the data section
// [0, data_size), consistent with its dtype and shape.
absl::StatusOr<TensorView> ParseTensorEntry(const std::string& file, const std::string& name, const Json& entry,
                                            const std::byte* data, uint64_t data_size, Span* span) {
  if (!entry.is_object()) return Invalid(file, "tensor '", name, "': entry is not a JSON object");
  TensorView view;
  view.name = name;
  RETURN_IF_ERROR(ParseDTypeAndShape(file, name, entry, &view));
  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 || !IsUint((*offsets_it)[0]) ||
      !IsUint((*offsets_it)[1])) {
    return Invalid(file, "tensor '", name, "': 'data_offsets' must be two non-negative integers");
  }
  const uint64_t begin = (*offsets_it)[0].get<uint64_t>();
  const uint64_t end = (*offsets_it)[1].get<uint64_t>();
  uint64_t nbytes = 0;
  if (!ByteSize(view.shape, view.dtype, &nbytes)) {
    return Invalid(file, "tensor '", name, "': shape ", ShapeString(view.shape), " overflows");
  }
  if (begin > end) return Invalid(file, "tensor '", name, "': data_offsets [", begin, ", ", end, "] are reversed");
  if (end - begin != nbytes) {
    return Invalid(file, "tensor '", name, "': data_offsets [", begin, ", ", end, "] span ", end - begin,
                   " bytes but shape ", ShapeString(view.shape), " of ", DTypeName(view.dtype), " needs ", nbytes);
  }
  if (end > data_size) {
    return Invalid(file, "tensor '", name, "': data_offsets [", begin, ", ", end, "] lie beyond the ", data_size,
                   "-byte data section (the file is truncated or corrupt)");
  }
  view.data = data + begin;
  *span = {begin, end, nullptr};
  return view;
}

// Every header entry: __metadata__ into `metadata`, tensors into `tensors` with their byte ranges in `spans`.
absl::Status ParseEntries(const std::string& file, const Json& header, const std::byte* data, uint64_t data_size,
                          TensorMap* tensors, MetadataMap* metadata, std::vector<Span>* spans) {
  try {
    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& name = it.key();
      if (name == "__metadata__") {
        RETURN_IF_ERROR(ParseMetadata(file, it.value(), metadata));
        continue;
      }
      Span span{};
      ASSIGN_OR_RETURN(TensorView view, ParseTensorEntry(file, name, it.value(), data, data_size, &span));
      auto [pos, inserted] = tensors->emplace(name, std::move(view));
      span.name = &pos->first;
      spans->push_back(span);
    }
  } catch (const Json::exception& e) {
    return Invalid(file, "bad header: ", e.what());
  }
  return absl::OkStatus();
}

// The tensors must tile the data section exactly: no overlaps, no holes, no trailing bytes.
absl::Status CheckDataTiling(const std::string& file, std::vector<Span> spans, uint64_t data_size) {
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t covered = 0;
  const Span* previous = nullptr;
  for (const Span& s : spans) {
    if (s.begin < covered) {
      return Invalid(file, "tensors '", *previous->name, "' [", previous->begin, ", ", previous->end, ") and '",
                     *s.name, "' [", s.begin, ", ", s.end, ") overlap");
    }
    if (s.begin > covered) {
      return Invalid(file, "bytes [", covered, ", ", s.begin, ") of the data section belong to no tensor");
    }
    covered = s.end;
    if (s.end > s.begin || previous == nullptr) previous = &s;
  }
  if (covered != data_size) {
    return Invalid(file, "bytes [", covered, ", ", data_size, ") at the end of the data section belong to no tensor");
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------------------------- reading

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::filesystem::path& path) {
  const std::string file = path.string();
  ASSIGN_OR_RETURN(const MappedFile mapped, MapReadOnly(file));
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());  // unmaps on every error below
  f->path_ = path;
  f->map_ = mapped.map;
  f->map_size_ = mapped.size;
  const auto* base = static_cast<const std::byte*>(mapped.map);
  uint64_t header_size = 0;
  ASSIGN_OR_RETURN(const Json header, ParseHeaderJson(file, base, mapped.size, &header_size));
  const uint64_t data_size = mapped.size - 8 - header_size;
  std::vector<Span> spans;
  RETURN_IF_ERROR(ParseEntries(file, header, base + 8 + header_size, data_size, &f->tensors_, &f->metadata_, &spans));
  RETURN_IF_ERROR(CheckDataTiling(file, std::move(spans), data_size));
  return f;
}

const TensorView* SafetensorsFile::Find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

absl::StatusOr<std::unique_ptr<WeightStore>> WeightStore::Open(const std::filesystem::path& dir) {
  std::unique_ptr<WeightStore> store(new WeightStore());
  std::error_code ec;
  const std::filesystem::path index_path = dir / "model.safetensors.index.json";
  const std::filesystem::path single_path = dir / "model.safetensors";
  if (std::filesystem::exists(index_path, ec)) {
    const std::string index_name = index_path.string();
    std::ifstream in(index_path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) return absl::InternalError(StrCatStd("cannot read ", index_name));
    std::map<std::string, std::set<std::string>> by_file;  // shard -> the tensors the index assigns to it
    try {
      const Json index = Json::parse(text);
      if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
        return absl::InvalidArgumentError(StrCatStd(index_name, ": no \"weight_map\" object"));
      }
      for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
        if (!it.value().is_string()) {
          return absl::InvalidArgumentError(
              StrCatStd(index_name, ": weight_map entry '", it.key(), "' is not a file name string"));
        }
        const std::string shard = it.value().get<std::string>();
        const std::filesystem::path shard_path(shard);
        if (shard.empty() || shard_path.is_absolute() || shard_path.has_parent_path() || shard == "." ||
            shard == "..") {
          return absl::InvalidArgumentError(StrCatStd(index_name, ": weight_map entry '", it.key(), "' names '", shard,
                                                      "', not a file in the model directory"));
        }
        by_file[shard].insert(it.key());
      }
    } catch (const Json::exception& e) {
      return absl::InvalidArgumentError(StrCatStd(index_name, ": bad JSON: ", e.what()));
    }
    if (by_file.empty()) return absl::InvalidArgumentError(StrCatStd(index_name, ": weight_map is empty"));
    for (const auto& [shard, names] : by_file) {
      absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(dir / shard);
      if (!file.ok()) {
        if (absl::IsNotFound(file.status())) {
          return absl::NotFoundError(StrCatStd(index_name, " lists shard '", shard, "' (for tensor '", *names.begin(),
                                               "'), which does not exist: ", (dir / shard).string()));
        }
        return file.status();
      }
      for (const std::string& name : names) {
        if ((*file)->Find(name) == nullptr) {
          return absl::InvalidArgumentError(StrCatStd(index_name, ": weight_map assigns tensor '", name, "' to ",
                                                      (dir / shard).string(), ", which lacks it"));
        }
      }
      for (const auto& [name, view] : (*file)->tensors()) {
        if (names.count(name) == 0) {
          return absl::InvalidArgumentError(StrCatStd((dir / shard).string(), " holds tensor '", name, "', which ",
                                                      index_name, " does not assign to it"));
        }
        store->index_.emplace(name, store->files_.size());
      }
      store->files_.push_back(*std::move(file));
    }
    return store;
  }
  if (!std::filesystem::exists(single_path, ec)) {
    return absl::NotFoundError(StrCatStd("no model.safetensors or model.safetensors.index.json in ", dir.string()));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(single_path));
  for (const auto& [name, view] : file->tensors()) store->index_.emplace(name, 0);
  store->files_.push_back(std::move(file));
  return store;
}

std::vector<std::string> WeightStore::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(index_.size());
  for (const auto& [name, file] : index_) names.push_back(name);
  return names;
}

const TensorView* WeightStore::Find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : files_[it->second]->Find(name);
}

std::filesystem::path WeightStore::FileOf(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? std::filesystem::path() : files_[it->second]->path();
}

absl::StatusOr<TensorView> WeightStore::Get(std::string_view name, std::span<const int64_t> shape) const {
  const TensorView* view = Find(name);
  if (view == nullptr) {
    std::vector<std::string> files;
    for (const auto& f : files_) files.push_back(f->path().string());
    return absl::NotFoundError(StrCatStd("tensor '", name, "' not found in ", absl::StrJoin(files, ", ")));
  }
  if (!std::equal(view->shape.begin(), view->shape.end(), shape.begin(), shape.end())) {
    return absl::InvalidArgumentError(StrCatStd("tensor '", name, "' in ", FileOf(name).string(), " has shape ",
                                                ShapeString(view->shape), ", expected ", ShapeString(shape)));
  }
  if (view->dtype != DType::kBF16 && view->dtype != DType::kF16 && view->dtype != DType::kF32) {
    return absl::InvalidArgumentError(StrCatStd("tensor '", name, "' in ", FileOf(name).string(), " has dtype ",
                                                DTypeName(view->dtype), "; weights must be BF16, F16 or F32"));
  }
  return *view;
}

// ---------------------------------------------------------------------------------------------- writing

uint64_t SafetensorsTensorSpec::nbytes() const {
  uint64_t n = 0;
  return ByteSize(shape, dtype, &n) ? n : 0;
}

void SafetensorsWriter::FreeDeleter::operator()(std::byte* p) const { std::free(p); }

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const std::filesystem::path& path, std::vector<SafetensorsTensorSpec> tensors,
    const std::map<std::string, std::string>& metadata, const SafetensorsWriteOptions& options) {
  std::unique_ptr<SafetensorsWriter> w(new SafetensorsWriter());
  w->path_ = path;
  w->partial_path_ = path;
  w->partial_path_ += ".partial";

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const SafetensorsTensorSpec& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__") {
      return absl::InvalidArgumentError(StrCatStd("cannot write a tensor named '", t.name, "'"));
    }
    if (!names.insert(t.name).second)
      return absl::InvalidArgumentError(StrCatStd("tensor '", t.name, "' is listed twice"));
    uint64_t nbytes = 0;
    if (!ByteSize(t.shape, t.dtype, &nbytes) || __builtin_add_overflow(offset, nbytes, &offset)) {
      return absl::InvalidArgumentError(StrCatStd("tensor '", t.name, "' has an invalid shape ", ShapeString(t.shape)));
    }
    header[t.name] = {
        {"dtype", std::string(DTypeName(t.dtype))}, {"shape", t.shape}, {"data_offsets", {offset - nbytes, offset}}};
    w->ends_.push_back(offset);
  }
  w->data_size_ = offset;
  w->tensors_ = std::move(tensors);

  const std::string partial = w->partial_path_.string();
  constexpr int kFlags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  if (options.direct_io) {
    w->fd_ = ::open(partial.c_str(), kFlags | O_DIRECT, 0644);
    w->direct_ = w->fd_ >= 0;
  }
  if (w->fd_ < 0) w->fd_ = ::open(partial.c_str(), kFlags, 0644);
  if (w->fd_ < 0) return absl::ErrnoToStatus(errno, StrCatStd("cannot create ", partial));

  // The data section starts 8-aligned, or block-aligned for O_DIRECT (more space padding, still valid).
  const size_t align = w->direct_ ? kDirectAlign : 8;
  std::string text = header.dump();
  text.append((align - (8 + text.size()) % align) % align, ' ');
  w->header_size_ = text.size();

  // Reserve the whole file up front: a full disk fails here rather than after gigabytes, and the
  // filesystem can lay the file out in one go. Filesystems without fallocate just skip this.
  if (::fallocate(w->fd_, 0, 0, static_cast<off_t>(w->file_size())) != 0 && errno != EOPNOTSUPP && errno != ENOSYS &&
      errno != EINVAL) {
    return w->Fail(absl::ErrnoToStatus(errno, StrCatStd("cannot allocate ", w->file_size(), " bytes for ", partial)));
  }
  w->buffer_capacity_ = static_cast<size_t>(
      std::min<uint64_t>(kStagingBytes, (w->file_size() + kDirectAlign - 1) / kDirectAlign * kDirectAlign));
  void* buffer = nullptr;
  if (::posix_memalign(&buffer, kDirectAlign, w->buffer_capacity_) != 0) {
    return w->Fail(absl::ResourceExhaustedError(StrCatStd("cannot allocate a ", w->buffer_capacity_, "-byte buffer")));
  }
  w->buffer_.reset(static_cast<std::byte*>(buffer));
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(w->header_size_ >> (8 * i));
  RETURN_IF_ERROR(w->Stage({reinterpret_cast<const std::byte*>(length), 8}));
  RETURN_IF_ERROR(w->Stage({reinterpret_cast<const std::byte*>(text.data()), text.size()}));
  return w;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) {
    std::error_code ec;
    std::filesystem::remove(partial_path_, ec);
  }
}

absl::Status SafetensorsWriter::Fail(absl::Status status) {
  failed_ = true;
  return status;
}

absl::Status SafetensorsWriter::WriteStaged(size_t n) {
  size_t done = 0;
  while (done < n) {
    const ssize_t rc = ::pwrite(fd_, buffer_.get() + done, n - done, static_cast<off_t>(file_offset_ + done));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) {
      return Fail(absl::ErrnoToStatus(rc < 0 ? errno : EIO, StrCatStd("cannot write ", partial_path_.string())));
    }
    done += static_cast<size_t>(rc);
  }
  file_offset_ += n;
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Stage(std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    const size_t n = std::min(bytes.size(), buffer_capacity_ - buffer_fill_);
    std::memcpy(buffer_.get() + buffer_fill_, bytes.data(), n);
    buffer_fill_ += n;
    bytes = bytes.subspan(n);
    if (buffer_fill_ == buffer_capacity_) {
      RETURN_IF_ERROR(WriteStaged(buffer_fill_));
      buffer_fill_ = 0;
    }
  }
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Append(std::span<const std::byte> bytes) {
  if (finished_ || failed_) {
    return absl::FailedPreconditionError(StrCatStd(path_.string(), ": Append after Finish or a failure"));
  }
  if (bytes.size() > data_size_ - bytes_written_) {
    return absl::OutOfRangeError(StrCatStd(path_.string(), ": appending ", bytes.size(), " bytes exceeds the ",
                                           data_size_ - bytes_written_, " bytes left of the declared tensors"));
  }
  RETURN_IF_ERROR(Stage(bytes));
  bytes_written_ += bytes.size();
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Finish() {
  if (finished_ || failed_) {
    return absl::FailedPreconditionError(StrCatStd(path_.string(), ": Finish after Finish or a failure"));
  }
  if (bytes_written_ != data_size_) {
    const auto it = std::upper_bound(ends_.begin(), ends_.end(), bytes_written_);
    const std::string& name = tensors_[static_cast<size_t>(it - ends_.begin())].name;
    return absl::FailedPreconditionError(StrCatStd(path_.string(), ": only ", bytes_written_, " of ", data_size_,
                                                   " data bytes were written; tensor '", name, "' is incomplete"));
  }
  if (buffer_fill_ > 0) {
    // O_DIRECT writes whole blocks: pad the tail with zeros, then cut the file back to size.
    const size_t n = direct_ ? (buffer_fill_ + kDirectAlign - 1) / kDirectAlign * kDirectAlign : buffer_fill_;
    std::memset(buffer_.get() + buffer_fill_, 0, n - buffer_fill_);
    RETURN_IF_ERROR(WriteStaged(n));
    buffer_fill_ = 0;
  }
  if (::ftruncate(fd_, static_cast<off_t>(file_size())) != 0) {
    return Fail(absl::ErrnoToStatus(errno, StrCatStd("cannot truncate ", partial_path_.string())));
  }
  const int close_rc = ::close(fd_);
  fd_ = -1;
  if (close_rc != 0) return Fail(absl::ErrnoToStatus(errno, StrCatStd("cannot close ", partial_path_.string())));
  std::error_code ec;
  std::filesystem::rename(partial_path_, path_, ec);
  if (ec) {
    return Fail(absl::InternalError(
        StrCatStd("cannot rename ", partial_path_.string(), " to ", path_.string(), ": ", ec.message())));
  }
  finished_ = true;
  return absl::OkStatus();
}

absl::Status WriteSafetensors(const std::filesystem::path& path, std::span<const TensorToWrite> tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::vector<SafetensorsTensorSpec> specs;
  specs.reserve(tensors.size());
  for (const TensorToWrite& t : tensors) {
    SafetensorsTensorSpec spec{t.name, t.dtype, t.shape};
    uint64_t nbytes = 0;
    if (!ByteSize(t.shape, t.dtype, &nbytes) || nbytes != t.bytes.size()) {
      return absl::InvalidArgumentError(StrCatStd("tensor '", t.name, "': ", t.bytes.size(),
                                                  " bytes do not match shape ", ShapeString(t.shape), " of ",
                                                  DTypeName(t.dtype)));
    }
    specs.push_back(std::move(spec));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsWriter> writer,
                   SafetensorsWriter::Create(path, std::move(specs), metadata));
  for (const TensorToWrite& t : tensors) RETURN_IF_ERROR(writer->Append(t.bytes));
  return writer->Finish();
}

absl::Status UpdateSafetensorsMetadata(const std::filesystem::path& path,
                                       const std::map<std::string, std::string>& updates) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
  std::map<std::string, std::string> metadata(file->metadata().begin(), file->metadata().end());
  for (const auto& [key, value] : updates) metadata[key] = value;
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, view] : file->tensors()) {
    tensors.push_back({name, view.dtype, view.shape, std::span<const std::byte>(view.data, view.nbytes())});
  }
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  std::error_code error;
  if (absl::Status written = WriteSafetensors(tmp, tensors, metadata); !written.ok()) {
    std::filesystem::remove(tmp, error);
    return written;
  }
  std::filesystem::rename(tmp, path, error);
  if (error) {
    std::filesystem::remove(tmp, error);
    return absl::InternalError(StrCatStd("cannot replace ", path.string(), ": ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace adak::engine
