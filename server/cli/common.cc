#include <cstdio>
#include <string>

#include "server/cli/commands.h"

#include "base/status_macros.h"

namespace adak::cli {

int ReportError(std::string_view command, const absl::Status& status) {
  std::fprintf(stderr, "adak %.*s: %s\n", static_cast<int>(command.size()), command.data(),
               std::string(status.message()).c_str());
  const bool usage = status.code() == absl::StatusCode::kInvalidArgument || status.code() == absl::StatusCode::kNotFound;
  return usage ? 2 : 1;
}

absl::StatusOr<LoadedSession> OpenSession(const Flags& flags) {
  LoadedSession s;
  ASSIGN_OR_RETURN(std::string dir, flags.Required("model"));
  ASSIGN_OR_RETURN(s.model, engine::LoadModel(dir));
  engine::SessionOptions options;
  ASSIGN_OR_RETURN(int64_t threads, flags.Int("threads", 0, 0, 1024));
  options.num_threads = static_cast<int>(threads);
  ASSIGN_OR_RETURN(s.session, engine::Session::Create(*s.model, options));
  return s;
}

}  // namespace adak::cli
