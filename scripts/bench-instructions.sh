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
# and base+81 (origin) [18100].
#
# Method: one nginx origin (100-byte body) on 127.0.0.1; swarmgate (workers: 1, no access log,
# keepalive 32) under callgrind; scripts/bench/keepalive_load.py sends exactly 400 warm-up
# requests, then BENCH_REQUESTS more, over 8 keep-alive connections. Each binary runs twice,
# with and without the measured requests; the difference of the two totals divided by
# BENCH_REQUESTS is the cost of one request (start-up and warm-up cancel out).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${BENCH_REQUESTS:-4000}
BASE=${BENCH_PORT_BASE:-18100}
PORT=$((BASE + 80)) ORIGIN=$((BASE + 81))
log() { printf '[bench-instructions] %s\n' "$*" >&2; }

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v nginx >/dev/null || need+=(nginx-light)
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

cat >"$TMP/swarmgate.yaml" <<CONF
workers: 1
access_log: false
listen: "127.0.0.1:$PORT"
admin: {listen: ""}
upstreams:
  origin:
    keepalive: 32
    servers:
      - address: "127.0.0.1:$ORIGIN"
CONF

total() { # total BIN EXTRA_REQUESTS -> callgrind's instruction total for the whole run
    local out=$TMP/cg.out pid
    rm -f "$out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$1" --config "$TMP/swarmgate.yaml" \
        >"$TMP/proxy.log" 2>&1 &
    pid=$!
    wait_port "$PORT" "$pid" || { log "swarmgate did not start: $(tail -5 "$TMP/proxy.log")"; exit 1; }
    python3 "$ROOT/scripts/bench/keepalive_load.py" "$PORT" 400 >/dev/null
    if (($2 > 0)); then python3 "$ROOT/scripts/bench/keepalive_load.py" "$PORT" "$2" >/dev/null; fi
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

echo "| binary | instructions per request |"
echo "|---|---|"
for b in "${BINS[@]}"; do
    with=$(total "$b" "$N")
    without=$(total "$b" 0)
    echo "| $b | $(((with - without) / N)) |"
done
