// A real `adak serve` process for integration tests: started with ephemeral ports (0) on 127.0.0.1,
// its ready line parsed for the bound ports, its stdout and stderr captured to a log file (Log(), for
// failure messages), and SIGTERM-ed (then SIGKILL-ed) and reaped on destruction. Not thread-safe: one
// test thread drives it.
#ifndef ADAK_TESTS_SERVER_PROCESS_H_
#define ADAK_TESTS_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/test_util.h"

namespace adak::testing {

class ServerProcess {
 public:
  // Runs `adak serve <args>`, adding `--host 127.0.0.1 --grpc-port 0 --http-port 0` for those not in
  // `args`, and waits for the ready line. Errors: Internal with the log when the process cannot start,
  // exits early, or is not ready within `timeout` (it is killed then). `fd_limit` > 0 runs it under
  // `ulimit -n fd_limit` (through /bin/sh, which then execs it: pid() is still the server's).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(std::vector<std::string> args,
                                                                            absl::Duration timeout = absl::Seconds(60),
                                                                            int fd_limit = 0);
  ~ServerProcess();  // Stop()
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  // -1 when that front end is off.
  [[nodiscard]] int grpc_port() const { return grpc_port_; }
  [[nodiscard]] int http_port() const { return http_port_; }
  [[nodiscard]] std::string grpc_address() const;  // "127.0.0.1:PORT"

  // Sends `signal` (e.g. SIGTERM) to the process.
  void Signal(int signal) const;
  // Waits for the process to exit; its exit code (128 + signal when killed by one). DeadlineExceeded
  // when it is still running after `timeout`.
  [[nodiscard]] absl::StatusOr<int> WaitExit(absl::Duration timeout);
  // SIGTERM, up to 15 s to exit, then SIGKILL; reaps it. Idempotent.
  void Stop();

  // Everything the process wrote to stdout and stderr so far.
  [[nodiscard]] std::string Log() const;

 private:
  ServerProcess() = default;

  TempDir dir_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  int grpc_port_ = -1;
  int http_port_ = -1;
};

}  // namespace adak::testing

#endif  // ADAK_TESTS_SERVER_PROCESS_H_
