#!/usr/bin/env bash
# CI check of deploy/ without a cluster (none on the CI machines):
#  1. every kustomize overlay of deploy/k8s/overlays renders (`kubectl kustomize`) and every object in it is
#     valid against the Kubernetes OpenAPI schemas, CRDs included (tools/k8s-validate, npm kubernetes-models);
#  2. each overlay agrees with `adak serve`: probe and container ports = --grpc-port/--http-port, readiness on
#     the Generation service of proto/, grace period > preStop sleep + --drain-timeout, every flag it passes
#     is a flag of `adak serve --help` (tools/k8s-validate/consistency.mjs);
#  3. deploy/prometheus/rules.yaml: `promtool check rules` and its unit tests (`promtool test rules`);
#  4. deploy/grafana/*.json: valid dashboards whose every PromQL expression parses (promtool) and names only
#     metrics a real /metrics scrape of `adak serve` (the repo's default model, one request served) has.
# BIN: the built adak (default build/bin/adak; .ci/run builds it first).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-build/bin/adak}"
fail() { echo "check-deploy: $*" >&2; exit 1; }
[ -x "$BIN" ] || fail "$BIN not built"
for tool in kubectl promtool node npm curl; do command -v "$tool" >/dev/null || fail "$tool not found"; done
tmp="$(mktemp -d)"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# 1 + 2: Kubernetes.
(cd tools/k8s-validate && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
readiness="$(sed -n 's/^package \(.*\);/\1/p' proto/adak/v1/generation.proto).$(sed -n 's/^service \([A-Za-z]*\).*/\1/p' proto/adak/v1/generation.proto)"
help="$("$BIN" serve --help)"
rendered=()
for overlay in deploy/k8s/overlays/*/; do
  name="$(basename "$overlay")"
  kubectl kustomize "$overlay" >"$tmp/$name.yaml" || fail "overlay $name does not render"
  rendered+=("$tmp/$name.yaml")
  flags="$(node tools/k8s-validate/consistency.mjs "$tmp/$name.yaml" "$readiness")" || fail "overlay $name disagrees with adak serve"
  for flag in $flags; do
    grep -qE -- "^ *$flag " <<<"$help" || fail "overlay $name passes $flag, not a flag of adak serve"
  done
done
node tools/k8s-validate/validate.mjs "${rendered[@]}" || fail "invalid Kubernetes objects"

# 3: Prometheus rules.
promtool check rules deploy/prometheus/rules.yaml
(cd deploy/prometheus && promtool test rules tests.yaml)

# 4: Grafana, against a real scrape.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
http_port="$(port)"
"$BIN" serve --model models/stories-moe-small --grpc-port -1 --http-port "$http_port" --threads 1 >"$tmp/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$http_port/metrics" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/serve.log"; fail "adak serve exited"; }
  sleep 0.2
done
curl -sf "http://127.0.0.1:$http_port/v1/completions" -H 'Content-Type: application/json' \
  -d '{"prompt": "Once upon a time", "max_tokens": 4}' >/dev/null || fail "the completion request failed"
curl -sf "http://127.0.0.1:$http_port/metrics" >"$tmp/metrics.txt" || fail "no /metrics scrape"
for dashboard in deploy/grafana/*.json; do
  python3 tools/deploy/lint_dashboard.py "$dashboard" "$tmp/dashboard-rules.yaml" "$tmp/metrics.txt" \
    || fail "$dashboard does not lint"
  promtool check rules "$tmp/dashboard-rules.yaml" >/dev/null || fail "$dashboard has an expression promtool rejects"
done
echo "check-deploy: ${#rendered[@]} overlays valid and consistent with adak serve, rules and tests pass, dashboards lint against a live scrape"
