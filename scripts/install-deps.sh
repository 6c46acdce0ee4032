#!/usr/bin/env bash
# Installs every build and test dependency from Debian packages. Idempotent; run as root (or with sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git python3
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev libboost-dev libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev
  libopenblas-dev libpcre2-dev libcli11-dev libutf8proc-dev libssl-dev
  openssl curl  # tests: the throwaway CA of tests/server/grpc/tls_test.cc and its HTTPS client
  clang clang-format clang-tidy  # CI: the thread-safety + sanitizer build, the format and tidy checks
  prometheus  # the real server for tests/server/prometheus_scrape_test.cc (its service is not started)
  haproxy nginx  # the real balancers of bench/scale_out.sh (gRPC through HAProxy, HTTP through nginx)
  chromium  # the real browser of tests/server/http/dashboard_test.cc (headless)
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
