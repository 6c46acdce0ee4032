#!/usr/bin/env bash
# Scale-out behind real balancers, and a replica drained mid-run.
#
# Three `adak serve` replicas on loopback; HAProxy in front of their gRPC ports (HTTP/2 both ways, round
# robin, an active health check of each replica's HTTP /readyz every 100 ms) and nginx in front of their
# HTTP ports (round robin; a 503 or a refused connection goes to the next replica, POST included).
# adak-loadtest drives both balancers at once (closed loop, gRPC with --grpc-retries 2 as a production client
# of a replicated service); after a third of the run replica 2 gets SIGTERM: its readiness drops, it refuses
# new calls (UNAVAILABLE / 503), finishes its running streams and exits 0.
#
# Prints, and checks (exit 1 when one fails):
#   - no request failed through either balancer;
#   - every replica served requests before the drain, and replicas 1 and 3 after it;
#   - replica 2 exited 0 ("drained") after the drain;
#   - HAProxy marked replica 2 DOWN and sent it no new session after that (its session count at the moment
#     it went DOWN equals the final one);
#   - per replica: requests finished (adak_requests_total), and the new calls replica 2 refused while draining.
#
#   bash bench/scale_out.sh [--duration S] [--concurrency C] [--max-tokens N] [--model DIR] [--quick]
#
# Needs build/bin/adak and build/bin/adak-loadtest, haproxy and nginx (scripts/install-deps.sh); exits 77
# (ctest: skipped) when a balancer is not installed. --quick: a short run for the test suite
# (tests/CMakeLists.txt registers it as ScaleOut.ThreeReplicasBehindHaproxyAndNginx).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BIN:-$ROOT/build/bin}"
MODEL="$ROOT/models/stories-moe-small"
DURATION=12
CONCURRENCY=4
MAX_TOKENS=48
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    --max-tokens) MAX_TOKENS="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --quick) DURATION=6; CONCURRENCY=3; MAX_TOKENS=24; shift ;;
    *) echo "scale_out: unknown argument $1" >&2; exit 2 ;;
  esac
done
HAPROXY="$(command -v haproxy || true)"
NGINX="$(command -v nginx || true)"
if [ -z "$HAPROXY" ] || [ -z "$NGINX" ]; then
  echo "scale_out: SKIPPED: haproxy and nginx are needed (bash scripts/install-deps.sh)"
  exit 77
fi
for b in adak adak-loadtest; do
  [ -x "$BIN/$b" ] || { echo "scale_out: $BIN/$b is not built (bash scripts/build.sh)" >&2; exit 2; }
done

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "scale_out: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# Free loopback ports: 3 gRPC + 3 HTTP for the replicas, one per balancer.
read -r -a PORTS <<<"$(python3 - <<'EOF'
import socket
socks = []
for _ in range(9):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)"
GRPC=("${PORTS[0]}" "${PORTS[1]}" "${PORTS[2]}")
HTTP=("${PORTS[3]}" "${PORTS[4]}" "${PORTS[5]}")
LB_GRPC="${PORTS[6]}"
LB_HTTP="${PORTS[7]}"

REPLICA_PIDS=()
for i in 0 1 2; do
  "$BIN/adak" serve --model "$MODEL" --host 127.0.0.1 --grpc-port "${GRPC[$i]}" --http-port "${HTTP[$i]}" \
      --threads 1 --drain-timeout 60 --drain-grace 1 >"$WORK/replica$((i + 1)).log" 2>&1 &
  REPLICA_PIDS+=($!)
  PIDS+=($!)
done
for i in 0 1 2; do
  for _ in $(seq 1 600); do
    grep -q "ready" "$WORK/replica$((i + 1)).log" && break
    kill -0 "${REPLICA_PIDS[$i]}" 2>/dev/null || { cat "$WORK/replica$((i + 1)).log"; exit 1; }
    sleep 0.1
  done
done

cat >"$WORK/haproxy.cfg" <<EOF
global
  stats socket $WORK/haproxy.sock level admin
defaults
  mode http
  timeout connect 2s
  timeout client 300s
  timeout server 300s
frontend grpc
  bind 127.0.0.1:$LB_GRPC proto h2
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /readyz
  default-server inter 100ms fall 1 rise 2
  server r1 127.0.0.1:${GRPC[0]} proto h2 check port ${HTTP[0]} check-proto h1
  server r2 127.0.0.1:${GRPC[1]} proto h2 check port ${HTTP[1]} check-proto h1
  server r3 127.0.0.1:${GRPC[2]} proto h2 check port ${HTTP[2]} check-proto h1
EOF
USER_LINE=""
[ "$(id -u)" -eq 0 ] && USER_LINE="user root;"
cat >"$WORK/nginx.conf" <<EOF
$USER_LINE
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx-body;
  proxy_temp_path $WORK/nginx-proxy;
  fastcgi_temp_path $WORK/nginx-fastcgi;
  uwsgi_temp_path $WORK/nginx-uwsgi;
  scgi_temp_path $WORK/nginx-scgi;
  upstream replicas {
    server 127.0.0.1:${HTTP[0]} max_fails=0;
    server 127.0.0.1:${HTTP[1]} max_fails=0;
    server 127.0.0.1:${HTTP[2]} max_fails=0;
  }
  server {
    listen 127.0.0.1:$LB_HTTP;
    location / {
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 300s;
      proxy_next_upstream error timeout http_503 non_idempotent;
      proxy_next_upstream_tries 3;
    }
  }
}
EOF
"$HAPROXY" -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
"$NGINX" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" -g "daemon off;" >"$WORK/nginx.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  (echo >"/dev/tcp/127.0.0.1/$LB_GRPC") 2>/dev/null && (echo >"/dev/tcp/127.0.0.1/$LB_HTTP") 2>/dev/null && break
  sleep 0.1
done
sleep 0.5  # HAProxy's first health checks

# HAProxy's view of r2 every 50 ms until the end: "status stot" lines (show stat, CSV fields 18 and 8).
python3 - "$WORK/haproxy.sock" "$WORK/r2-states.txt" "$WORK/done" <<'EOF' &
import os, socket, sys, time
sock_path, out_path, done = sys.argv[1:4]
with open(out_path, "w") as out:
    while not os.path.exists(done):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock_path)
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            s.close()
            for line in data.decode().splitlines():
                f = line.split(",")
                if len(f) > 17 and f[0] == "replicas" and f[1] == "r2":
                    out.write(f"{time.time():.3f} {f[17]} {f[7]}\n")
                    out.flush()
        except OSError:
            pass
        time.sleep(0.05)
EOF
PIDS+=($!)

# Replica 2's finished-request count, scraped until it exits (its last scrape is its final count).
python3 - "${HTTP[1]}" "$WORK/r2-metrics.txt" "$WORK/done" <<'EOF' &
import os, sys, time, urllib.request
port, out_path, done = sys.argv[1:4]
while not os.path.exists(done):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
        open(out_path + ".tmp", "w").write(text)
        os.replace(out_path + ".tmp", out_path)
    except Exception:
        pass
    time.sleep(0.1)
EOF
PIDS+=($!)

metric_sum() {  # metric_sum FILE NAME [LABEL_FILTER]: sum of the samples of NAME in a scrape
  awk -v name="$2" -v filter="${3:-}" '$1 ~ "^"name"({|$)" && (filter == "" || index($1, filter) > 0) {s += $2} END {printf "%d", s}' "$1"
}
scrape() { curl -s "http://127.0.0.1:$1/metrics" >"$2"; }

echo "# $(date -u +%FT%TZ) model=$(basename "$MODEL") replicas=3 duration=${DURATION}s concurrency=$CONCURRENCY per" \
     "balancer max_tokens=$MAX_TOKENS cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\" cores=$(nproc)"
"$BIN/adak-loadtest" --target "127.0.0.1:$LB_GRPC" --grpc-retries 2 --concurrency "$CONCURRENCY" \
    --duration "$DURATION" --max-tokens "$MAX_TOKENS" --label haproxy-grpc --no-progress \
    --json "$WORK/grpc.json" >"$WORK/grpc.txt" 2>&1 &
LOAD_GRPC=$!
"$BIN/adak-loadtest" --api openai --target "http://127.0.0.1:$LB_HTTP/v1/completions" --concurrency "$CONCURRENCY" \
    --duration "$DURATION" --max-tokens "$MAX_TOKENS" --label nginx-http --no-progress \
    --json "$WORK/http.json" >"$WORK/http.txt" 2>&1 &
LOAD_HTTP=$!

sleep "$(python3 -c "print($DURATION / 3)")"
for i in 0 1 2; do scrape "${HTTP[$i]}" "$WORK/before$((i + 1)).prom"; done
DRAIN_AT="$(date +%s.%N)"
kill -TERM "${REPLICA_PIDS[1]}"
set +e
wait "${REPLICA_PIDS[1]}"
R2_EXIT=$?
wait "$LOAD_GRPC"
GRPC_EXIT=$?
wait "$LOAD_HTTP"
HTTP_EXIT=$?
set -e
for i in 0 2; do scrape "${HTTP[$i]}" "$WORK/after$((i + 1)).prom"; done
touch "$WORK/done"
sleep 0.2

echo "## through HAProxy (gRPC)"; cat "$WORK/grpc.txt"
echo "## through nginx (OpenAI HTTP)"; cat "$WORK/http.txt"
FAIL=0
check() {  # check CONDITION MESSAGE
  if eval "$1"; then echo "ok: $2"; else echo "FAILED: $2"; FAIL=1; fi
}
GRPC_ERRORS="$(python3 -c "import json; print(json.load(open('$WORK/grpc.json'))['overall']['errors'])")"
HTTP_ERRORS="$(python3 -c "import json; print(json.load(open('$WORK/http.json'))['overall']['errors'])")"
GRPC_REQUESTS="$(python3 -c "import json; print(json.load(open('$WORK/grpc.json'))['overall']['requests'])")"
HTTP_REQUESTS="$(python3 -c "import json; print(json.load(open('$WORK/http.json'))['overall']['requests'])")"
echo "## per replica: requests finished (adak_requests_total) before the drain / at the end"
TOTAL=0
for r in 1 2 3; do
  before="$(metric_sum "$WORK/before$r.prom" adak_requests_total)"
  if [ "$r" = 2 ]; then
    after="$(metric_sum "$WORK/r2-metrics.txt" adak_requests_total)"
    refused="$(metric_sum "$WORK/r2-metrics.txt" adak_request_errors_total 'code="unavailable"')"
    echo "replica 2: $before / $after (drained: exit $R2_EXIT; refused $refused new calls while draining)"
  else
    after="$(metric_sum "$WORK/after$r.prom" adak_requests_total)"
    echo "replica $r: $before / $after"
    check "[ $after -gt $before ]" "replica $r served requests after the drain"
  fi
  check "[ $before -gt 0 ]" "replica $r served requests before the drain"
  TOTAL=$((TOTAL + after))
done
echo "requests through the balancers: $GRPC_REQUESTS gRPC + $HTTP_REQUESTS HTTP; finished by the replicas: $TOTAL" \
     "(retried refusals count once)"
check "[ $GRPC_EXIT -eq 0 ] && [ $GRPC_ERRORS -eq 0 ]" "no gRPC request failed through HAProxy ($GRPC_ERRORS errors)"
check "[ $HTTP_EXIT -eq 0 ] && [ $HTTP_ERRORS -eq 0 ]" "no HTTP request failed through nginx ($HTTP_ERRORS errors)"
check "[ $R2_EXIT -eq 0 ] && grep -q drained $WORK/replica2.log" "replica 2 drained and exited 0"
# HAProxy: r2's first DOWN sample after the drain, and its session count then and at the end.
read -r DOWN_AT DOWN_STOT END_STOT <<<"$(python3 - "$WORK/r2-states.txt" "$DRAIN_AT" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
drain = float(sys.argv[2])
down = next((r for r in rows if float(r[0]) >= drain and r[1].startswith("DOWN")), None)
print(f"{float(down[0]) - drain:.3f} {down[2]} {rows[-1][2]}" if down else "none 0 0")
EOF
)"
echo "HAProxy: r2 DOWN ${DOWN_AT}s after SIGTERM with $DOWN_STOT sessions; $END_STOT at the end"
check "[ '$DOWN_AT' != none ] && [ '$DOWN_STOT' = '$END_STOT' ]" \
      "HAProxy marked replica 2 DOWN and sent it nothing after"
exit $FAIL
