#include "tests/server_process.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <algorithm>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

extern char** environ;

namespace adak::testing {
namespace {

bool HasFlag(const std::vector<std::string>& args, const std::string& flag) {
  return std::any_of(args.begin(), args.end(),
                     [&](const std::string& a) { return a == flag || a.rfind(flag + "=", 0) == 0; });
}

// The exit code of a waitpid status.
int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int ParsePort(const std::string& log, const std::string& name) {
  std::smatch m;
  const std::regex re(name + "=(?:[^ :]+|\\[[^\\]]*\\]):([0-9]+)");
  if (std::regex_search(log, m, re)) return std::stoi(m[1].str());
  return -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(std::vector<std::string> args,
                                                                    absl::Duration timeout, int fd_limit) {
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  std::vector<std::string> argv = {AdakBinary(), "serve"};
  argv.insert(argv.end(), args.begin(), args.end());
  if (!HasFlag(args, "--host")) argv.insert(argv.end(), {"--host", "127.0.0.1"});
  if (!HasFlag(args, "--grpc-port")) argv.insert(argv.end(), {"--grpc-port", "0"});
  if (!HasFlag(args, "--http-port")) argv.insert(argv.end(), {"--http-port", "0"});
  if (fd_limit > 0) {
    // sh sets the limit and execs the server in its place: "$0" is the binary, "$@" its arguments.
    argv.insert(argv.begin(), {"/bin/sh", "-c", absl::StrCat("ulimit -n ", fd_limit, " && exec \"$0\" \"$@\"")});
  }
  const std::string log_path = (p->dir_.path() / "serve.log").string();

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const int rc = posix_spawn(&p->pid_, cargv[0], &actions, &attr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    p->pid_ = -1;
    return absl::InternalError(absl::StrCat("cannot start ", absl::StrJoin(argv, " "), ": ", strerror(rc)));
  }

  // Ready (the ready line is in the log) or gone (it exited before printing it).
  std::string log;
  const ::testing::AssertionResult settled = WaitFor(
      "adak serve to print its ready line",
      [&] {
        log = p->Log();
        if (log.find("adak serve: ready") != std::string::npos) return true;
        int status = 0;
        if (waitpid(p->pid_, &status, WNOHANG) != p->pid_) return false;
        p->exit_code_ = ExitCode(status);
        return true;
      },
      timeout, absl::Milliseconds(20));
  if (!settled) {
    p->Stop();
    return absl::InternalError(
        absl::StrCat("adak serve was not ready within ", absl::FormatDuration(timeout), "; its log:\n", p->Log()));
  }
  if (p->exit_code_.has_value()) {
    return absl::InternalError(
        absl::StrCat("adak serve exited with ", *p->exit_code_, " before it was ready; its log:\n", p->Log()));
  }
  p->grpc_port_ = ParsePort(log, "grpc");
  p->http_port_ = ParsePort(log, "http");
  return p;
}

ServerProcess::~ServerProcess() { Stop(); }

std::string ServerProcess::grpc_address() const { return absl::StrCat("127.0.0.1:", grpc_port_); }

void ServerProcess::Signal(int signal) const {
  if (pid_ > 0 && !exit_code_.has_value()) ::kill(pid_, signal);
}

absl::StatusOr<int> ServerProcess::WaitExit(absl::Duration timeout) {
  if (exit_code_.has_value()) return *exit_code_;
  if (pid_ <= 0) return absl::FailedPreconditionError("no process");
  const ::testing::AssertionResult exited = WaitFor(
      "adak serve to exit",
      [&] {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
        exit_code_ = ExitCode(status);
        return true;
      },
      timeout, absl::Milliseconds(10));
  if (!exited) {
    return absl::DeadlineExceededError(
        absl::StrCat("adak serve (pid ", pid_, ") still running after ", absl::FormatDuration(timeout)));
  }
  return *exit_code_;
}

void ServerProcess::Stop() {
  if (pid_ <= 0 || exit_code_.has_value()) return;
  Signal(SIGTERM);
  if (WaitExit(absl::Seconds(15)).ok()) return;
  ::kill(pid_, SIGKILL);
  (void)WaitExit(absl::Seconds(15));
}

std::string ServerProcess::Log() const { return ReadFile(dir_.path() / "serve.log"); }

}  // namespace adak::testing
