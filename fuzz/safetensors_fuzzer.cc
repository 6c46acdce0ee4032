// libFuzzer target: a .safetensors file from a downloaded checkpoint (SafetensorsFile::Open: the 8-byte
// header length, the JSON header, dtypes, shapes, offsets against the file size), then every tensor it
// accepted read end to end (what ASan checks: offsets that Open let through stay inside the mapping).
// The input is written to a memfd, so the file is opened, sized and mmapped exactly as on disk.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd_create("fuzz.safetensors", 0);
  if (fd < 0) return 0;
  size_t written = 0;
  while (written < size) {
    const ssize_t n = write(fd, data + written, size - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  if (written == size) {
    absl::StatusOr<std::unique_ptr<adak::engine::SafetensorsFile>> file =
        adak::engine::SafetensorsFile::Open("/proc/self/fd/" + std::to_string(fd));
    if (file.ok()) {
      uint64_t sum = 0;
      for (const auto& [name, t] : (*file)->tensors()) {
        for (size_t i = 0; i < t.nbytes(); ++i) sum += static_cast<uint8_t>(t.data[i]);
      }
      volatile uint64_t sink = sum;
      (void)sink;
    }
  }
  close(fd);
  return 0;
}
