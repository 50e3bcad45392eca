#!/usr/bin/env bash
# scripts/bench-table.sh — route table lookups at full speed (issue 14). Not part of the tests.
#
# Starts an origin nginx (127.0.0.1:PORT_BASE+1, 100-byte answer to every path), a redis-server
# (PORT_BASE+2, no persistence) and swarmgate (proxy PORT_BASE, admin PORT_BASE+9) with three
# routes to that origin: /plain/ (a named upstream, the baseline), /ws/ (embedded table) and
# /rd/ (Redis table). PUTs BENCH_ENTRIES entries through the admin API (one keepalive
# connection, timed) and HSETs as many in Redis, then runs wrk on random keys of each route.
#
#   SWARMGATE_BIN=target/release/swarmgate scripts/bench-table.sh
# Environment: BENCH_ENTRIES [10000], BENCH_DURATION [10], BENCH_CONNS [64], BENCH_THREADS [1],
# PORT_BASE [18300]. Load goes to 127.0.0.1 only; everything started is stopped by PID on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${SWARMGATE_BIN:-$ROOT/target/release/swarmgate}
N=${BENCH_ENTRIES:-10000}
DUR=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-64}
THREADS=${BENCH_THREADS:-1}
BASE=${PORT_BASE:-18300}
PROXY=127.0.0.1:$BASE ORIGIN=127.0.0.1:$((BASE + 1)) REDIS_PORT=$((BASE + 2)) ADMIN=127.0.0.1:$((BASE + 9))
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for c in nginx wrk redis-server redis-cli python3; do command -v $c >/dev/null || { echo "needs $c" >&2; exit 1; }; done

mkdir -p "$DIR/state" "$DIR/nginx"
cat >"$DIR/nginx/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $DIR/nginx/nginx.pid; error_log $DIR/nginx/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 10000000; keepalive_timeout 900s;
  client_body_temp_path $DIR/nginx; proxy_temp_path $DIR/nginx; fastcgi_temp_path $DIR/nginx;
  uwsgi_temp_path $DIR/nginx; scgi_temp_path $DIR/nginx;
  server { listen $ORIGIN backlog=4096; location / { return 200 "$(printf '%0100d' 0)"; } } }
CONF
nginx -c "$DIR/nginx/nginx.conf" -p "$DIR/nginx" & PIDS+=($!)
redis-server --save "" --appendonly no --bind 127.0.0.1 --port "$REDIS_PORT" >/dev/null & PIDS+=($!)
echo bench-token >"$DIR/token"
cat >"$DIR/swarmgate.yaml" <<CONF
listen: "$PROXY"
access_log: false
keepalive_requests: 0
state_dir: "$DIR/state"
admin: {listen: "$ADMIN", token_file: "$DIR/token"}
upstreams:
  origin: {servers: [{address: "$ORIGIN"}], keepalive: 8}   # as a table target's pool
routes:
  - {path_prefix: /plain/, upstream: origin}
  - {path_prefix: /ws/, table: {name: hosts, allow: ["127.0.0.1/32"]}}
  - {path_prefix: /rd/, table: {name: rhosts, store: redis, redis: "redis://127.0.0.1:$REDIS_PORT/0", allow: ["127.0.0.1/32"]}}
CONF
RUST_LOG=${RUST_LOG:-warn} "$BIN" --config "$DIR/swarmgate.yaml" & PIDS+=($!)
for a in "$PROXY" "$ADMIN" "$ORIGIN" "127.0.0.1:$REDIS_PORT"; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/${a%:*}/${a#*:}") 2>/dev/null && break; sleep 0.1; done
done

python3 - "$ADMIN" "$ORIGIN" "$N" <<'PY'
import http.client, sys, time
admin, origin, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection(admin)
t = time.time()
for i in range(n):
    c.request("PUT", f"/api/tables/hosts/k{i}", body=f'{{"target":"{origin}"}}',
              headers={"Authorization": "Bearer bench-token"})
    r = c.getresponse(); r.read()
    assert r.status in (200, 201), r.status
dt = time.time() - t
print(f"PUT {n} entries (embedded, one connection, each committed before its answer): {dt:.1f} s, {n/dt:.0f} PUT/s")
PY
for i in $(seq 0 $((N - 1))); do echo "HSET rhosts k$i $ORIGIN"; done | redis-cli -p "$REDIS_PORT" >/dev/null
echo "HSET $N entries in Redis"

cat >"$DIR/random.lua" <<'LUA'
local prefix = os.getenv("ROUTE")
local n = tonumber(os.getenv("ENTRIES"))
request = function()
  return wrk.format("GET", prefix .. "k" .. math.random(0, n - 1) .. "/")
end
done = function(summary, latency, requests)
  io.write(string.format("non-2xx/3xx: %d, errors: %d\n", summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
for route in /plain/ /ws/ /rd/; do
  ROUTE=$route ENTRIES=$N wrk -t1 -c"$CONNS" -d2s -s "$DIR/random.lua" "http://$PROXY" >/dev/null # warm-up
  echo "== $route: wrk -t$THREADS -c$CONNS -d${DUR}s, random key of $N"
  ROUTE=$route ENTRIES=$N wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency -s "$DIR/random.lua" "http://$PROXY" \
    | grep -E "Requests/sec|Latency |50%|99%|non-2xx"
done
curl -s "http://$ADMIN/metrics" | grep -E "^swarmgate_table_(entries|lookups_total|store_up)"
