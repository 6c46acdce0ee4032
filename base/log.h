// Minimal process logging to stderr: one line per call, with a UTC timestamp and a level.
//
// Thread-safe: each line is written with a single write(2) so lines from different threads never interleave.
#ifndef ADAK_BASE_LOG_H_
#define ADAK_BASE_LOG_H_

#include <string_view>

namespace adak {

enum class LogLevel { kInfo, kWarning, kError };

void Log(LogLevel level, std::string_view message);
inline void LogInfo(std::string_view message) { Log(LogLevel::kInfo, message); }
inline void LogWarning(std::string_view message) { Log(LogLevel::kWarning, message); }
inline void LogError(std::string_view message) { Log(LogLevel::kError, message); }

}  // namespace adak

#endif  // ADAK_BASE_LOG_H_
