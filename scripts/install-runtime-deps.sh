#!/usr/bin/env bash
# The Debian/Ubuntu packages holding the shared libraries `adak` links against at run time.
#   install-runtime-deps.sh --list BIN      print them, one a line (ldd BIN | dpkg -S), for the build host
#   install-runtime-deps.sh --check [FILE]  verify each package (FILE, else the Debian 12 list below) is known to apt
#   install-runtime-deps.sh [FILE]          install them (FILE, else the Debian 12 list below); run as root
# deploy/docker/Dockerfile.* run --list in the build stage and install that list in the runtime stage;
# scripts/check-docker.sh runs --list and --check on the CI host.
set -euo pipefail
DEBIAN12=(
  libabsl20220623 libc-ares2 libgfortran5 libgrpc++1.51 libgrpc29 libopenblas0-pthread libpcre2-8-0
  libprometheus-cpp-core1.0 libprotobuf32 libquadmath0 libre2-9 libssl3 libstdc++6 libutf8proc2
)
if [ "${1:-}" = "--list" ]; then
  # dpkg -S fails for a library no package owns (then that library is missing from the list: check-docker.sh
  # compares the list with DEBIAN12).
  { ldd "$2" | awk '/=> \//{print $3}' | xargs -r realpath | xargs -r dpkg -S 2>/dev/null || true; } | cut -d: -f1 \
    | grep -v -E '^(libc6|libgcc-s1)$' | sort -u
  exit 0
fi
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
if [ -n "${1:-}" ]; then mapfile -t PACKAGES <"$1"; else PACKAGES=("${DEBIAN12[@]}"); fi
PACKAGES+=(ca-certificates)
if [ "$check" = 1 ]; then
  for p in "${PACKAGES[@]}"; do
    apt-cache show "$p" >/dev/null 2>&1 || { echo "install-runtime-deps: unknown package $p" >&2; exit 1; }
  done
  echo "install-runtime-deps: all ${#PACKAGES[@]} packages known to apt"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
$SUDO rm -rf /var/lib/apt/lists/*
