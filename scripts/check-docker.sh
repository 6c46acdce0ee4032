#!/usr/bin/env bash
# CI check of deploy/docker/Dockerfile.* without a container daemon (none on the CI machines):
#  1. every repo script a Dockerfile RUN/COPY names exists and parses (bash -n);
#  2. the runtime package list the build stage derives (install-runtime-deps.sh --list) from the binary CI built
#     equals the Debian 12 list in install-runtime-deps.sh, and apt knows every package (--check);
#  3. every flag the image's CMD passes to `adak serve` is a flag of `adak serve --help`, and the model dir the
#     image copies exists; 4. the runtime stage runs as a non-root numeric USER.
# install-deps.sh and build.sh themselves run earlier in .ci/run on the host. BIN: the built adak (build/bin/adak).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-build/bin/adak}"
fail() { echo "check-docker: $*" >&2; exit 1; }
for df in deploy/docker/Dockerfile.cpu deploy/docker/Dockerfile.cuda; do
  [ -f "$df" ] || fail "$df missing"
  for s in $(grep -oE 'scripts/[A-Za-z0-9_.-]+\.sh' "$df" | sort -u); do
    [ -f "$s" ] || fail "$df names $s, which does not exist"
    bash -n "$s" || fail "$s does not parse"
  done
  model=$(grep -oE '^COPY models/[^ ]+' "$df" | awk '{print $2}')
  [ -f "$model/config.json" ] || fail "$df copies $model, which has no config.json"
  grep -qE '^USER [1-9][0-9]*:[1-9][0-9]*$' "$df" || fail "$df: runtime stage must set a numeric non-root USER"
  help=$("$BIN" serve --help)
  for flag in $(grep '^CMD' "$df" | grep -oE '"--[a-z-]+"' | tr -d '"'); do
    grep -qE -- "^ *$flag " <<<"$help" || fail "$df passes $flag, not a flag of adak serve"
  done
done
listed=$(bash scripts/install-runtime-deps.sh --list "$BIN")
expected=$(sed -n '/^DEBIAN12=(/,/^)/p' scripts/install-runtime-deps.sh | sed '1d;$d' | tr ' ' '\n' | sed '/^$/d' | sort -u)
[ "$listed" = "$expected" ] || fail "runtime packages of $BIN differ from DEBIAN12 in install-runtime-deps.sh:
$(diff <(echo "$expected") <(echo "$listed") || true)"
tmp=$(mktemp); echo "$listed" >"$tmp"
bash scripts/install-runtime-deps.sh --check "$tmp"; rm -f "$tmp"
echo "check-docker: Dockerfile.cpu and Dockerfile.cuda: scripts present, runtime packages match, CMD flags valid"
