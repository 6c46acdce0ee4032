# Shared by the bench/peer scripts (sourced, not run): a free loopback port, and the EXIT cleanup that stops the
# servers a script started (their pids in `pids`) and removes its scratch directory (`work`).
# shellcheck shell=bash
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# shellcheck disable=SC2154  # pids and work belong to the sourcing script
peer_cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
