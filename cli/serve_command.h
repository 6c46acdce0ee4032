// `adak serve` (library adak_cli_serve): the inference server (gRPC + OpenAI-compatible HTTP) over one
// model until SIGTERM/SIGINT. The `adak` binary runs it as a sub-command and `adak-server` as its whole
// command line, with the same flags; this library links the server and nothing of training/ or testing/.
// Thread-compatible: set up and run on the main thread.
#ifndef ADAK_CLI_SERVE_COMMAND_H_
#define ADAK_CLI_SERVE_COMMAND_H_

#include "CLI/CLI.hpp"
#include "cli/app.h"

namespace adak::cli {

// Gives `command` the serve description and flags; the returned action blocks SIGTERM and SIGINT in
// every thread (before it starts any), serves until the first, drains, and returns OK. Errors: the
// server's (InvalidArgument naming the flag, NotFound naming a missing file, Unavailable naming a port
// that cannot be bound).
[[nodiscard]] CommandFn SetUpServe(CLI::App* command);

}  // namespace adak::cli

#endif  // ADAK_CLI_SERVE_COMMAND_H_
