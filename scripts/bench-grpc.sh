#!/usr/bin/env bash
# scripts/bench-grpc.sh — gRPC unary calls through HAProxy and through swarmgate (issue 12).
# Not part of the test suite. Needs haproxy and h2load (Debian: haproxy, nghttp2-client).
#
# Two gRPC origins (examples/grpc_origin.rs: tonic + tonic-health, grpc.health.v1.Health/Check)
# on 127.0.0.1 and 127.0.0.2; the proxy (HAProxy 2.6 `mode http`, `proto h2` both sides, one
# thread; swarmgate `workers: 1`, upstream `protocol: h2c`) pinned to CPU BENCH_PROXY_CPU [0],
# origins and h2load to BENCH_LOAD_CPU [1]. h2load: BENCH_CONNS [16] connections x
# BENCH_STREAMS [10] concurrent calls, BENCH_DURATION [5] s after 1 s warm-up, BENCH_REPS [3]
# interleaved reps. Reports req/s and p50/p99 (from h2load's per-request log) per rep and the
# medians. Every call is checked once first to end with grpc-status 0 through each proxy.
#   SWARMGATE_BIN [target/release/swarmgate]   BENCH_PORT_BASE [29000]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BASE=${BENCH_PORT_BASE:-29000}
CONNS=${BENCH_CONNS:-16}
STREAMS=${BENCH_STREAMS:-10}
DURATION=${BENCH_DURATION:-5}
REPS=${BENCH_REPS:-3}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
SG=${SWARMGATE_BIN:-target/release/swarmgate}
PORT=$((BASE + 80)) P1=$((BASE + 81)) P2=$((BASE + 82))
for t in haproxy h2load curl taskset; do
    command -v "$t" >/dev/null || { echo "bench-grpc: $t is required" >&2; exit 2; }
done
[[ -x $SG ]] || { echo "bench-grpc: no swarmgate at $SG (cargo build --release)" >&2; exit 2; }
cargo build --quiet --release --example grpc_origin
ORIGIN=target/release/examples/grpc_origin
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.05; done; echo "bench-grpc: $1:$2 not listening" >&2; return 1; }

taskset -c "$LOAD_CPU" "$ORIGIN" "127.0.0.1:$P1" & PIDS+=($!)
taskset -c "$LOAD_CPU" "$ORIGIN" "127.0.0.2:$P2" & PIDS+=($!)
wait_port 127.0.0.1 "$P1"; wait_port 127.0.0.2 "$P2"

# An empty HealthCheckRequest: gRPC frame = flag 0, length 0.
printf '\0\0\0\0\0' >"$TMP/req.bin"
cat >"$TMP/haproxy.cfg" <<CFG
global
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend grpc
    bind 127.0.0.1:$PORT proto h2
    default_backend origins
backend origins
    balance roundrobin
    http-reuse always
    server o1 127.0.0.1:$P1 proto h2
    server o2 127.0.0.2:$P2 proto h2
CFG
cat >"$TMP/swarmgate.yaml" <<CFG
workers: 1
access_log: false
listen: "127.0.0.1:$PORT"
admin: {listen: ""}
upstreams:
  default:
    protocol: h2c
    servers:
      - address: "127.0.0.1:$P1"
      - address: "127.0.0.2:$P2"
CFG

start_proxy() {
    case $1 in
    haproxy) taskset -c "$PROXY_CPU" haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 & ;;
    swarmgate) RUST_LOG=warn taskset -c "$PROXY_CPU" "$SG" --config "$TMP/swarmgate.yaml" >"$TMP/swarmgate.log" 2>&1 & ;;
    esac
    PROXY=$!
    PIDS+=("$PROXY")
    wait_port 127.0.0.1 "$PORT"
    local trailers
    trailers=$(curl -s --http2-prior-knowledge -D - -o /dev/null --data-binary @"$TMP/req.bin" \
        -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$PORT/grpc.health.v1.Health/Check" | tr -d '\r')
    grep -qi '^grpc-status: 0$' <<<"$trailers" || { echo "bench-grpc: $1: call did not end with grpc-status 0:" >&2; echo "$trailers" >&2; exit 1; }
}
stop_proxy() { kill "$PROXY" 2>/dev/null || true; wait "$PROXY" 2>/dev/null || true; sleep 0.3; }

run() { # run PROXY REP
    local log="$TMP/$1.$2.log" out="$TMP/$1.$2.out"
    taskset -c "$LOAD_CPU" h2load -t1 -c"$CONNS" -m"$STREAMS" -D "$DURATION" --warm-up-time=1 \
        -d "$TMP/req.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
        --log-file="$log" "http://127.0.0.1:$PORT/grpc.health.v1.Health/Check" >"$out"
    python3 - "$1" "$2" "$out" "$log" <<'PY'
import re, sys
name, rep, out, log = sys.argv[1:]
text = open(out).read()
rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text).group(1))
ok = re.search(r"status codes: (\d+) 2xx", text).group(1)
failed = re.search(r"(\d+) failed", text).group(1)
d = sorted(int(l.split()[2]) for l in open(log) if l.strip())
p50, p99 = d[len(d) // 2] / 1000, d[min(len(d) - 1, len(d) * 99 // 100)] / 1000
print(f"{name} {rep} {rps:.0f} {p50:.2f} {p99:.2f} {ok} {failed}")
PY
}

echo "# gRPC unary (Health/Check), h2load -c$CONNS -m$STREAMS, ${DURATION}s x $REPS reps; $(nproc) CPUs, $(uname -r)"
echo "# proxy rep req/s p50_ms p99_ms 2xx failed"
RESULTS="$TMP/results"
for rep in $(seq "$REPS"); do
    order=(haproxy swarmgate)
    ((rep % 2)) || order=(swarmgate haproxy)
    for p in "${order[@]}"; do
        start_proxy "$p"
        run "$p" "$rep" | tee -a "$RESULTS"
        stop_proxy
    done
done
echo "# medians"
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for p in ("haproxy", "swarmgate"):
    r = [x for x in rows if x[0] == p]
    med = lambda i: statistics.median(float(x[i]) for x in r)
    print(f"{p}: {med(2):.0f} req/s, p50 {med(3):.2f} ms, p99 {med(4):.2f} ms")
PY
