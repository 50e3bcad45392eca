#!/usr/bin/env bash
# scripts/bench-instructions.sh — user-space instructions per proxied request, counted by
# valgrind's callgrind. Unlike req/s on a shared 2-core VM (±20 % between runs), the count is
# repeatable to a fraction of a percent for the same binary, so it shows whether a hot-path
# change removed work. It does not see kernel time (about 70 % of the proxy's CPU here, see
# README "Performance") nor cache misses. Not part of the test suite.
#
# Usage:
#   scripts/bench-instructions.sh                      # target/release/swarmgate
#   scripts/bench-instructions.sh OLD_BIN NEW_BIN ...  # each binary, same load, one line each
# Environment: BENCH_REQUESTS requests measured [4000]; BENCH_PORT_BASE ports base+80 (proxy)
# and base+81, base+82 (origins) [18100]; BENCH_CASE http1 [default] or grpc; BENCH_KEEP=PREFIX
# keeps each run's callgrind output as PREFIX.<extra requests> for callgrind_annotate (symbols:
# a binary from `cargo build --profile profiling`).
#
# Method (http1): one nginx origin (100-byte body) on 127.0.0.1; swarmgate (workers: 1, no access
# log, keepalive 32) under callgrind; scripts/bench/keepalive_load.py sends exactly 400 warm-up
# requests, then BENCH_REQUESTS more, over 8 keep-alive connections.
# Method (grpc): two gRPC origins (examples/grpc_origin.rs) on 127.0.0.1 and 127.0.0.2, upstream
# `protocol: h2c`; h2load sends unary grpc.health.v1.Health/Check calls over 8 h2c connections,
# 10 in flight on each (800 warm-up, then BENCH_REQUESTS); needs h2load (nghttp2-client) and
# builds the origin (`cargo build --release --example grpc_origin`).
# Each binary runs twice, with and without the measured requests; the difference of the two
# totals divided by BENCH_REQUESTS is the cost of one request (start-up and warm-up cancel out).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${BENCH_REQUESTS:-4000}
BASE=${BENCH_PORT_BASE:-18100}
CASE=${BENCH_CASE:-http1}
PORT=$((BASE + 80)) ORIGIN=$((BASE + 81)) ORIGIN2=$((BASE + 82))
case $CASE in
http1) WARMUP=400 ;;
grpc) WARMUP=800 ;;
*) echo "BENCH_CASE: http1 or grpc, not $CASE" >&2; exit 2 ;;
esac
log() { printf '[bench-instructions] %s\n' "$*" >&2; }

need=()
command -v valgrind >/dev/null || need+=(valgrind)
if [[ $CASE == grpc ]]; then
    command -v h2load >/dev/null || need+=(nghttp2-client)
else
    command -v nginx >/dev/null || need+=(nginx-light)
fi
if ((${#need[@]})); then
    log "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        apt-get install -y -qq --no-install-recommends "${need[@]/nginx-light/nginx}" >/dev/null
fi

BINS=("$@")
((${#BINS[@]})) || BINS=("$ROOT/target/release/swarmgate")
for b in "${BINS[@]}"; do [[ -x $b ]] || { log "not an executable: $b (cargo build --release?)"; exit 1; }; done

TMP=$(mktemp -d /tmp/swarmgate-instr.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

wait_port() { # wait_port PORT PID: up to 60 s (valgrind starts slowly)
    local i
    for ((i = 0; i < 600; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

proxy_config() { # proxy_config UPSTREAM_SETTING SERVER_ADDRESS...: swarmgate, workers: 1
    local a
    {
        printf 'workers: 1\naccess_log: false\nlisten: "127.0.0.1:%s"\nadmin: {listen: ""}\n' "$PORT"
        printf 'upstreams:\n  origin:\n    %s\n    servers:\n' "$1"
        for a in "${@:2}"; do printf '      - address: "%s"\n' "$a"; done
    } >"$TMP/swarmgate.yaml"
}

start_nginx_origin() {
    mkdir -p "$TMP/origin"
    cat >"$TMP/origin/nginx.conf" <<CONF
worker_processes 1;
pid $TMP/origin/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 10000000;
    client_body_temp_path $TMP/origin/body;
    proxy_temp_path $TMP/origin/proxy;
    fastcgi_temp_path $TMP/origin/fastcgi;
    uwsgi_temp_path $TMP/origin/uwsgi;
    scgi_temp_path $TMP/origin/scgi;
    server {
        listen 127.0.0.1:$ORIGIN;
        location / { return 200 "$(printf 'x%.0s' {1..100})"; }
    }
}
CONF
    nginx -p "$TMP/origin" -e "$TMP/origin/error.log" -c "$TMP/origin/nginx.conf" -g 'daemon off;' &
    PIDS+=($!)
    wait_port "$ORIGIN" "${PIDS[0]}" || { log "origin did not start: $(cat "$TMP/origin/error.log")"; exit 1; }

    proxy_config "keepalive: 32" "127.0.0.1:$ORIGIN"
}

start_grpc_origins() {
    (cd "$ROOT" && cargo build --quiet --release --example grpc_origin)
    local o
    for o in "127.0.0.1:$ORIGIN" "127.0.0.2:$ORIGIN2"; do
        "$ROOT/target/release/examples/grpc_origin" "$o" &
        PIDS+=($!)
    done
    wait_port "$ORIGIN" "${PIDS[0]}" || { log "gRPC origin did not start"; exit 1; }
    printf '\0\0\0\0\0' >"$TMP/call.bin" # an empty HealthCheckRequest, as one gRPC frame
    proxy_config "protocol: h2c" "127.0.0.1:$ORIGIN" "127.0.0.2:$ORIGIN2"
}

load() { # load N: N requests of the case through the proxy
    if [[ $CASE == grpc ]]; then
        h2load -t1 -c8 -m10 -n "$1" -d "$TMP/call.bin" -H 'content-type: application/grpc' \
            -H 'te: trailers' "http://127.0.0.1:$PORT/grpc.health.v1.Health/Check" >"$TMP/h2load.out"
        grep -q "succeeded, 0 failed" "$TMP/h2load.out" || { log "gRPC calls failed: $(grep requests: "$TMP/h2load.out")"; exit 1; }
    else
        python3 "$ROOT/scripts/bench/keepalive_load.py" "$PORT" "$1" >/dev/null
    fi
}

for p in "$PORT" "$ORIGIN" "$ORIGIN2"; do # something else there would be measured instead
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        log "port $p is in use (BENCH_PORT_BASE)"
        exit 1
    fi
done
if [[ $CASE == grpc ]]; then start_grpc_origins; else start_nginx_origin; fi

total() { # total BIN EXTRA_REQUESTS -> callgrind's instruction total for the whole run
    local out=$TMP/cg.out pid
    rm -f "$out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$1" --config "$TMP/swarmgate.yaml" \
        >"$TMP/proxy.log" 2>&1 &
    pid=$!
    wait_port "$PORT" "$pid" || { log "swarmgate did not start: $(tail -5 "$TMP/proxy.log")"; exit 1; }
    load "$WARMUP"
    if (($2 > 0)); then load "$2"; fi
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
    if [[ -n ${BENCH_KEEP:-} ]]; then cp "$out" "$BENCH_KEEP.$2"; fi
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

echo "| binary | instructions per request ($CASE) |"
echo "|---|---|"
for b in "${BINS[@]}"; do
    with=$(total "$b" "$N")
    without=$(total "$b" 0)
    echo "| $b | $(((with - without) / N)) |"
done
